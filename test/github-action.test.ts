// The GitHub Action (action.yml, github-action/*.cjs). No runner here, so: actionlint (pinned tool) on
// the example workflows and, through a workflow that uses it (`uses: ./`), on action.yml; action.yml's
// own shape against what its scripts read and set; then its main and post steps run as a runner
// runs them (INPUT_* variables, GITHUB_OUTPUT and GITHUB_STATE files, STATE_* in post, the action's
// directory in GITHUB_ACTION_PATH) against a dev server, with local clusters.
import fs from 'node:fs';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { execa } from 'execa';
import { parse } from 'yaml';
import { sweepDaemons } from '../src/util/sweep';
import { scratchDir, tool } from './helpers/env';
import { twoClusterYaml } from './helpers/fake-activities';
import { devServer } from './helpers/temporal';

const root = path.resolve(__dirname, '..');
const examples = path.join(root, 'examples', 'github-actions');

interface ActionMetadata {
  inputs: Record<string, { required?: boolean; default?: string }>;
  outputs: Record<string, { description: string }>;
  runs: { using: string; main: string; post: string; 'post-if': string };
}
const action = parse(fs.readFileSync(path.join(root, 'action.yml'), 'utf8')) as ActionMetadata;

/** A repository whose root holds the action and whose .github/workflows holds the examples (edited by `edit`). */
function project(label: string, edit: (text: string) => string = (t) => t): string {
  const dir = scratchDir(label);
  fs.copyFileSync(path.join(root, 'action.yml'), path.join(dir, 'action.yml'));
  fs.cpSync(path.join(root, 'github-action'), path.join(dir, 'github-action'), { recursive: true });
  // actionlint finds a project by its .git and .github/workflows directories.
  fs.mkdirSync(path.join(dir, '.git'));
  fs.mkdirSync(path.join(dir, '.github', 'workflows'), { recursive: true });
  for (const f of fs.readdirSync(examples)) {
    const text = fs.readFileSync(path.join(examples, f), 'utf8');
    fs.writeFileSync(path.join(dir, '.github', 'workflows', f), edit(text));
  }
  return dir;
}

const actionlint = (cwd: string, files: string[]) => execa(tool('actionlint'), files, { cwd, reject: false });

describe('lint', () => {
  test('actionlint passes the example workflows', async () => {
    const files = fs.readdirSync(examples).map((f) => path.join(examples, f));
    expect(files.length).toBeGreaterThan(0);
    const r = await actionlint(root, files);
    expect(r.stdout).toBe('');
    expect(r.exitCode).toBe(0);
  });

  test('actionlint checks action.yml through a workflow that uses it, and catches a wrong input', async () => {
    const good = project('gha-lint');
    const ok = await actionlint(good, []);
    expect(ok.stdout).toBe('');
    expect(ok.exitCode).toBe(0);
    const bad = project('gha-lint-bad', (t) => t.replace('spec: examples/', 'spek: examples/'));
    const r = await actionlint(bad, []);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toContain('input "spek" is not defined in action "meshflow mesh"');
    expect(r.stdout).toContain('missing input "spec" which is required');
  });

  test('action.yml: node24, main, post, post-if always(); scripts use exactly the declared inputs, outputs', () => {
    expect(action.runs).toEqual({
      using: 'node24',
      main: 'github-action/main.cjs',
      post: 'github-action/post.cjs',
      'post-if': 'always()',
    });
    const scripts = ['lib.cjs', 'main.cjs', 'post.cjs'].map((f) =>
      fs.readFileSync(path.join(root, 'github-action', f), 'utf8'),
    );
    const all = (re: RegExp) => [...new Set(scripts.flatMap((s) => [...s.matchAll(re)].map((m) => m[1])))].sort();
    expect(all(/\binput\('([\w-]+)'\)/g)).toEqual(Object.keys(action.inputs).sort());
    expect(all(/\bsetOutput\('([\w-]+)'/g)).toEqual(Object.keys(action.outputs).sort());
    expect(action.inputs.spec.required).toBe(true);
  });
});

/** key=value lines and key<<DELIMITER heredocs, as the runner reads GITHUB_OUTPUT and GITHUB_STATE. */
function readCommandFile(file: string): Record<string, string> {
  const lines = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n') : [];
  const out: Record<string, string> = {};
  for (let i = 0; i < lines.length; i++) {
    const heredoc = /^([\w-]+)<<(.+)$/.exec(lines[i]);
    if (heredoc) {
      const end = lines.indexOf(heredoc[2], i + 1);
      out[heredoc[1]] = lines.slice(i + 1, end).join('\n');
      i = end;
    } else if (lines[i].includes('=')) {
      out[lines[i].slice(0, lines[i].indexOf('='))] = lines[i].slice(lines[i].indexOf('=') + 1);
    }
  }
  return out;
}

describe('main and post, run as a runner runs them', () => {
  let env: TestWorkflowEnvironment;
  let state: string;
  let workspace: string;
  beforeAll(async () => {
    env = await devServer();
    state = scratchDir('gha-state');
    workspace = scratchDir('gha-workspace');
    fs.writeFileSync(path.join(workspace, 'mesh.yaml'), twoClusterYaml('gha', 'ttl: 1h\napp: { sample: none }\n'));
    fs.writeFileSync(path.join(workspace, 'cancel.yaml'), twoClusterYaml('gha-cancel', 'app: { sample: none }\n'));
    fs.writeFileSync(path.join(workspace, 'bad.yaml'), twoClusterYaml('gha-bad', 'colour: blue\n'));
  });
  afterAll(async () => {
    await sweepDaemons(state); // the background worker the CLI started, and any cluster a failure left
    await env?.teardown();
  });

  /** One step of the action: `script` with the inputs and, for post, main's state. */
  async function step(script: 'main' | 'post', inputs: Record<string, string>, saved: Record<string, string> = {}) {
    const files = scratchDir(`gha-${script}`);
    const [output, stateFile] = [path.join(files, 'output'), path.join(files, 'state')];
    const started = Date.now();
    const r = await execa(process.execPath, [path.join(root, 'github-action', `${script}.cjs`)], {
      reject: false,
      env: {
        MESHFLOW_STATE_DIR: state,
        GITHUB_ACTION_PATH: root,
        GITHUB_WORKSPACE: workspace,
        GITHUB_OUTPUT: output,
        GITHUB_STATE: stateFile,
        ...Object.fromEntries(Object.entries(inputs).map(([k, v]) => [`INPUT_${k.toUpperCase()}`, v])),
        ...Object.fromEntries(Object.entries(saved).map(([k, v]) => [`STATE_${k}`, v])),
      },
    });
    const seconds = (Date.now() - started) / 1000;
    return { ...r, seconds, outputs: readCommandFile(output), saved: readCommandFile(stateFile) };
  }
  /** The local clusters (directories) of the state directory whose names start with `prefix`. */
  const localClusters = (prefix: string) => {
    const dir = path.join(state, 'local', 'clusters');
    return fs.existsSync(dir) ? fs.readdirSync(dir).filter((c) => c.startsWith(prefix)) : [];
  };
  const temporal = () => ({ 'temporal-address': env.address, 'temporal-namespace': 'default' });

  test('main brings the mesh up and sets its outputs; post tears it down and waits until it is gone', async () => {
    const main = await step('main', { spec: 'mesh.yaml', ...temporal() });
    expect(main.stdout).not.toContain('::error::');
    expect(main.exitCode).toBe(0);
    expect(main.stdout).toContain(`meshflow is installed and built in ${root}`); // install: auto found the build
    expect(main.saved).toEqual({ mesh: 'gha' });
    expect(main.outputs).toMatchObject({ mesh: 'gha', phase: 'ready' });
    expect(JSON.parse(main.outputs.status)).toMatchObject({ mesh: 'gha', phase: 'ready', clusters: ['east', 'west'] });
    const kubeconfigs = JSON.parse(main.outputs.kubeconfigs) as Record<string, string>;
    expect(Object.keys(kubeconfigs)).toEqual(['east', 'west']);
    for (const file of Object.values(kubeconfigs)) expect(fs.readFileSync(file, 'utf8')).toContain('server: https://');
    process.stdout.write(`action main (two local clusters, ready): ${main.seconds.toFixed(1)} s\n`);

    const post = await step('post', { spec: 'mesh.yaml', ...temporal() }, main.saved);
    expect(post.stdout).not.toContain('::error::');
    expect(post.exitCode).toBe(0);
    expect(post.stdout).toContain('$ meshflow down gha --wait');
    expect(post.stdout).toContain('mesh gha is torn down');
    process.stdout.write(`action post (teardown): ${post.seconds.toFixed(1)} s\n`);
    for (const file of Object.values(kubeconfigs)) expect(fs.existsSync(file)).toBe(false);
    expect(localClusters('gha-')).toEqual([]);
    const status = await execa(
      process.execPath,
      [path.join(root, 'dist', 'cli', 'main.js'), 'status', 'gha', '--json'],
      {
        env: { MESHFLOW_STATE_DIR: state, TEMPORAL_ADDRESS: env.address },
      },
    );
    expect(JSON.parse(status.stdout)).toMatchObject({ phase: 'deleted', leftBehind: [] });
  });

  test('a job cancelled during up: post, run after the cancel, tears down what had been made', async () => {
    const files = scratchDir('gha-cancel');
    const stateFile = path.join(files, 'state');
    const main = execa(process.execPath, [path.join(root, 'github-action', 'main.cjs')], {
      reject: false,
      detached: true, // its own process group, which the cancel signals as the runner signals a step's processes
      env: {
        MESHFLOW_STATE_DIR: state,
        GITHUB_ACTION_PATH: root,
        GITHUB_WORKSPACE: workspace,
        GITHUB_OUTPUT: path.join(files, 'output'),
        GITHUB_STATE: stateFile,
        INPUT_SPEC: 'cancel.yaml',
        'INPUT_TEMPORAL-ADDRESS': env.address,
      },
    });
    // Cancelled once the first cluster exists, as the runner cancels: SIGINT to the step's processes.
    const made = () => localClusters('gha-cancel-').length > 0;
    const deadline = Date.now() + 120_000;
    while (!made() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
    expect(made()).toBe(true);
    process.kill(-main.pid!, 'SIGINT');
    expect((await main).signal).toBe('SIGINT');
    const saved = readCommandFile(stateFile);
    expect(saved).toEqual({ mesh: 'gha-cancel' });

    const post = await step('post', { spec: 'cancel.yaml', ...temporal() }, saved);
    expect(post.stdout).not.toContain('::error::');
    expect(post.exitCode).toBe(0);
    expect(post.stdout).toContain('mesh gha-cancel is torn down');
    expect(localClusters('gha-cancel-')).toEqual([]);
  });

  test('a bad spec: main fails with one ::error:: line naming the problem; post has nothing to do', async () => {
    const main = await step('main', { spec: 'bad.yaml', ...temporal() });
    expect(main.exitCode).toBe(1);
    const errors = main.stdout.split('\n').filter((l) => l.startsWith('::error::'));
    // The CLI's whole message in one annotation (its lines joined as %0A): which file, line and field.
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^::error::meshflow plan failed: \/.*\/bad\.yaml: invalid mesh spec:%0A/);
    expect(errors[0]).toMatch(/bad\.yaml:7:1 \(document\): unknown field "colour"$/);
    expect(main.saved).toEqual({});
    const post = await step('post', { spec: 'bad.yaml', ...temporal() }, main.saved);
    expect(post.exitCode).toBe(0);
    expect(post.stdout).toContain('no mesh to tear down');
  });

  test('secrets are masked first; a missing spec input is a clear error before anything runs', async () => {
    // A key-shaped secret, made here so that no file of the repository holds a PEM key block.
    const kind = ['PRIVATE', 'KEY'].join(' ');
    const key = `-----BEGIN ${kind}-----\nS3CRET-LINE\n-----END ${kind}-----`;
    const main = await step('main', { ...temporal(), 'temporal-api-key': 'api-s3cret', 'temporal-tls-key': key });
    expect(main.exitCode).toBe(1);
    expect(main.stdout.split('\n').slice(0, 5)).toEqual([
      '::add-mask::api-s3cret',
      `::add-mask::-----BEGIN ${kind}-----`,
      '::add-mask::S3CRET-LINE',
      `::add-mask::-----END ${kind}-----`,
      '::error::input spec is required: the path of the mesh spec in your repository',
    ]);
  });
});
