#!/usr/bin/env node
// The meshflow command line.
import fs from 'node:fs';
import path from 'node:path';
import { Argument, Command, Option } from 'commander';
import { WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import {
  applyMesh,
  endedRun,
  driftMesh,
  extendMesh,
  listMeshes,
  meshCreatedBy,
  meshHandle,
  meshStatus,
  planChange,
  startMesh,
  statusView,
  teardownMesh,
  verifyMesh,
  rotateMesh,
  startUpgrade,
  decideUpgrade,
} from '../client';
import { collectGarbage, gcClusterOptions, renderGc, temporalIsOpen } from '../gc';
import { kubernetesLocationFromEnv, trustStoreFromEnv } from '../trust-store/from-env';
import { COMPONENTS, istiodComponent } from '../local/clusters';
import { buildPlan } from '../plan/plan';
import { loadProviderModules } from '../providers/load';
import { providerIds } from '../providers/registry';
import { providerRuntime } from '../providers/runtimes';
import { packageRoot, stateDir } from '../paths';
import { loadMeshSpec, locateProblems } from '../spec/load';
import { type MeshSpec, specWarnings } from '../spec/schema';
import { describeDelta } from '../plan/diff';
import type { TemporalTarget } from '../temporal/connection';
import { localClusterName } from '../spec/names';
import { ensureTools, setupToolNames } from '../tools/install';
import { logFileOf } from '../util/daemon';
import { stderrProgress } from '../util/progress';
import { sleep } from '../util/net';
import { TASK_QUEUE } from '../workflows/definitions';
import { ROTATABLE, type MeshStatus, type RotateRequest } from '../workflows/types';
import { doctor } from './doctor';
import { gkeEmulatorCommand } from './gke-emulator';
import { localStatus, localStop, renderLocalStatus } from './local-admin';
import { JSON_SCHEMA_FILE, meshJsonSchema } from '../spec/json-schema';
import { renderMermaid } from '../plan/mermaid';
import { connect, connectWithWorker, watchWorker } from './local-mode';
import { CHECKS, selectChecks } from '../checks/catalog';
import { checksPage } from '../checks/docs-page';
import { specReference } from '../spec/reference';
import { forgotIn, renderCatalog, renderChecks, renderDrift, renderPlan, renderStatus } from './render';
import { serveCommand } from './serve';
import { scheduleCommand } from './schedule';
import { teamCommand } from './team';

const DEFAULT_EXAMPLE = path.join(packageRoot, 'examples', 'two-clusters.yaml');

// `meshflow list | head -1` closes our stdout early: that is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

const program = new Command('meshflow').description('Multi-cluster Istio meshes as durable Temporal workflows.');

program
  .command('doctor')
  .description('show each pinned tool: wanted and found version, where it is, whether it is ready')
  .option('--json', 'print JSON: {"tools":[{"name","wanted","found","path","ok"}]}')
  .action(async (opts: { json?: boolean }) => {
    process.exitCode = await doctor(opts);
  });

program
  .command('setup')
  .description('build or find every pinned tool (into ~/.cache/meshflow/tools; reused when present)')
  .option('--all', 'also the Istio builds of other lines than the default (else built when a mesh first needs one)')
  .action(async (opts: { all?: boolean }) => {
    await ensureTools(setupToolNames(opts.all));
  });

program
  .command('validate <file>')
  .description('check a mesh spec; errors name the field and line')
  .action((file: string) => {
    const spec = loadMeshSpec(file);
    warnAbout(file, spec);
    process.stdout.write(
      `${file}: mesh ${spec.name} is valid (${spec.clusters.length} clusters, ${spec.istio.topology}, ${spec.istio.dataPlane})\n`,
    );
  });

program
  .command('schema')
  .description(`print the mesh spec as JSON Schema (what ${JSON_SCHEMA_FILE} holds, for editors and other tools)`)
  .option('--markdown', 'print the spec reference instead (docs/spec-reference.md): every field, default and rule')
  .action((opts: { markdown?: boolean }) => {
    process.stdout.write(opts.markdown ? specReference() : JSON.stringify(meshJsonSchema(), null, 2) + '\n');
  });

program
  .command('checks')
  .description('list every check verify runs: its code, name, title and where it runs (docs/checks.md has each)')
  .option('--json', 'print the catalog as JSON')
  .option('--markdown', 'print the checks page (docs/checks.md)')
  .action((opts: { json?: boolean; markdown?: boolean }) => {
    if (opts.markdown) process.stdout.write(checksPage());
    else process.stdout.write(opts.json ? JSON.stringify(CHECKS, null, 2) + '\n' : renderCatalog().join('\n') + '\n');
  });

program
  .command('plan <file>')
  .description('print the steps that would run, what each creates and undoes, and the critical path (no side effects)')
  .option('--json', 'print the plan as JSON')
  .option('--mermaid', 'print the step graph as a Mermaid flowchart: clusters as lanes, the critical path in red')
  .option('--against <mesh>', 'print what `apply FILE` would change in this running mesh, as steps')
  .option('--replace <cluster>', 'with --against: remove this cluster and make it anew (repeatable)', collect)
  .action(async (file: string, opts: { json?: boolean; mermaid?: boolean; against?: string; replace?: string[] }) => {
    if (opts.json && opts.mermaid) throw new Error('--json and --mermaid: choose one');
    if (opts.against) {
      if (opts.mermaid) throw new Error('--mermaid draws a whole plan: leave out --against');
      return printChange(file, { ...opts, mesh: opts.against });
    }
    const plan = buildPlan(loadMeshSpec(file));
    if (opts.mermaid) return void process.stdout.write(renderMermaid(plan));
    process.stdout.write(opts.json ? JSON.stringify(plan, null, 2) + '\n' : renderPlan(plan));
  });

function collect(value: string, all: string[] = []): string[] {
  return [...all, ...value.split(',')];
}

/** The change `apply FILE` would make, as steps; refused changes as `validate` prints problems. */
async function printChange(file: string, opts: { json?: boolean; replace?: string[]; mesh?: string }) {
  const spec = loadMeshSpec(file);
  const { client } = await connectWithWorker();
  const { problems, delta } = await planChange(client, spec, opts.replace, opts.mesh);
  if (problems.length) throw locateProblems(file, problems);
  process.stdout.write(opts.json ? JSON.stringify(delta, null, 2) + '\n' : describeDelta(delta!));
}

program
  .command('apply <file>')
  .description(
    'change the running mesh to the spec in FILE (add, remove or replace clusters, move the app) and follow it; ' +
      'a failed change is undone',
  )
  .option('--dry-run', 'print the change as steps (what is added, re-linked, moved, removed); change nothing')
  .option('--replace <cluster>', 'remove this cluster and make it anew under its name (repeatable)', collect)
  .option('--json', 'print the result as JSON')
  .action(async (file: string, opts: { dryRun?: boolean; replace?: string[]; json?: boolean }) => {
    if (opts.dryRun) return printChange(file, opts);
    const spec = loadMeshSpec(file);
    const { client } = await connectWithWorker();
    const { problems, delta } = await planChange(client, spec, opts.replace);
    if (problems.length) throw locateProblems(file, problems);
    const update = await applyMesh(client, spec, opts.replace, trustStoreFromEnv(stateDir()));
    if (!opts.json) process.stdout.write(describeDelta(delta!, `update ${update.updateId} accepted; it will`));
    // Step changes as they happen, until the update answers.
    let answered = false;
    const result = update.result().finally(() => (answered = true));
    const seen = new Map<string, string>();
    const started = Date.now();
    while (!answered && !opts.json) {
      const s = await meshStatus(client, spec.name).catch(() => undefined);
      for (const st of s?.steps ?? []) {
        if (seen.get(st.id) === st.state || (!seen.has(st.id) && st.state === 'done')) continue;
        if (!seen.has(st.id) && st.state === 'pending') {
          seen.set(st.id, st.state);
          continue;
        }
        seen.set(st.id, st.state);
        const t = ((Date.now() - started) / 1000).toFixed(1).padStart(6);
        process.stdout.write(`${t}s  ${st.id}: ${st.state}${st.lastError ? ` (${st.lastError})` : ''}\n`);
      }
      await Promise.race([result.catch(() => undefined), sleep(500)]);
    }
    const out = await result;
    if (opts.json) return void process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    const u = out.update;
    process.stdout.write(`mesh ${spec.name}: update ${u.id} ${u.state}: ${u.summary}\n`);
    for (const f of u.forgotten ?? [])
      process.stdout.write(`  ${f.cluster} removed: ${f.detail}${forgotIn(f.afterMs)}\n`);
    if (u.error) process.stdout.write(`  ${u.error}\n`);
    const failed = out.checks.filter((c) => c.status === 'failed');
    process.stdout.write(
      `  now ${out.clusters.length} cluster(s): ${out.clusters.join(', ')}; ` +
        (failed.length ? `${failed.length} check(s) failed\n` : `checks passed (${out.checks.length})\n`),
    );
    if (failed.length) process.stdout.write(renderChecks(failed).join('\n') + '\n');
    if (u.state !== 'applied') process.exitCode = 1;
  });

/** What a valid spec asks that Istio itself does not stand behind, on stderr: `FILE: warning: FIELD: MESSAGE`. */
function warnAbout(file: string, spec: MeshSpec): void {
  for (const w of specWarnings(spec)) process.stderr.write(`${file}: warning: ${w.path.join('.')}: ${w.message}\n`);
}

async function up(file: string, opts: { detach?: boolean }): Promise<void> {
  const spec = loadMeshSpec(file);
  warnAbout(file, spec);
  const { client, target } = await connectWithWorker();
  // The workers' store: the files the spec names are copied into it, and read from it thereafter.
  await startMesh(client, spec, TASK_QUEUE, undefined, trustStoreFromEnv(stateDir()));
  const link = target.uiUrl
    ? `${target.uiUrl}/namespaces/${target.namespace}/workflows/${encodeURIComponent(`mesh/${spec.name}`)}`
    : undefined;
  process.stdout.write(`mesh ${spec.name}: started workflow mesh/${spec.name}${link ? `\n  Web UI: ${link}` : ''}\n`);
  if (opts.detach) return;
  const final = await follow(spec.name, client, target);
  process.stdout.write(renderStatus(final, target.uiUrl));
  if (final.phase !== 'ready') process.exitCode = 1;
  else
    process.stdout.write(
      `\nkubeconfigs: meshflow kubeconfig ${spec.name} <cluster>; tear down: meshflow down ${spec.name}\n`,
    );
}

/**
 * Prints each step's state changes until the mesh is ready or has ended. Every few seconds, checks
 * that the local background worker still runs, and restarts it if not (the mesh waits on it).
 */
async function follow(
  mesh: string,
  client: Awaited<ReturnType<typeof connect>>['client'],
  target: TemporalTarget,
): Promise<MeshStatus> {
  const seen = new Map<string, string>();
  const started = Date.now();
  const worker = watchWorker(client, target);
  let workerCheckedAt = started;
  for (;;) {
    if (Date.now() - workerCheckedAt >= 3000) {
      await worker.check();
      workerCheckedAt = Date.now();
    }
    let s: MeshStatus;
    try {
      s = await meshStatus(client, mesh);
    } catch (err) {
      if ((await meshHandle(client, mesh).describe()).status.name === 'RUNNING') {
        // A query needs a worker: the local one may have died, and be back by now.
        if (await worker.recovered()) continue;
        throw err;
      }
      // The workflow has ended (failed after compensating): its result says how.
      try {
        return await meshHandle(client, mesh).result();
      } catch (failure) {
        const f = failure as Error;
        process.stdout.write(`mesh ${mesh}: ${f.cause instanceof Error ? f.cause.message : f.message}\n`);
        return meshStatus(client, mesh); // closed workflows still answer queries, by replay
      }
    }
    for (const st of s.steps) {
      const key = `${st.state}${st.attempts ? `#${st.attempts}` : ''}`;
      if (seen.get(st.id) !== key && st.state !== 'pending') {
        const t = ((Date.now() - started) / 1000).toFixed(1).padStart(6);
        process.stdout.write(
          `${t}s  ${(st.cluster ?? 'mesh').padEnd(12)} ${st.kind}${st.target ? ` -> ${st.target}` : ''}: ${st.state}${st.lastError ? ` (${st.lastError})` : ''}\n`,
        );
        seen.set(st.id, key);
      }
    }
    if (s.phase !== 'provisioning' && s.phase !== 'compensating') return s;
    await sleep(500);
  }
}

program
  .command('up <file>')
  .description('provision the mesh in FILE and follow it until ready (starts local Temporal and a worker if none runs)')
  .option('--detach', 'return once the workflow has started')
  .action(up);

program
  .command('start-workflow')
  .description('`up` on the default example: a two-cluster, two-network mesh on local clusters')
  .option('--detach', 'return once the workflow has started')
  .action((opts: { detach?: boolean }) => up(DEFAULT_EXAMPLE, opts));

program
  .command('status <mesh>')
  .description("the mesh's phase, each step per cluster, checks and ledger")
  .option('--json', 'print the status as JSON')
  .action(async (mesh: string, opts: { json?: boolean }) => {
    const { client, target } = await connectWithWorker(); // queries are answered by a worker
    const [s, createdBy] = await Promise.all([
      meshStatus(client, mesh),
      meshCreatedBy(client, mesh).catch(() => undefined),
    ]);
    process.stdout.write(
      opts.json
        ? JSON.stringify({ ...statusView(s), ...(createdBy ? { createdBy } : {}) }, null, 2) + '\n'
        : renderStatus(s, target.uiUrl, createdBy),
    );
  });

program
  .command('verify <mesh>')
  .description(
    're-run every check on a ready mesh; failed checks name the likely cause, fix and docs (exit 1 if any failed)',
  )
  .option('--json', 'print the checks as JSON')
  .option(
    '--only <codes>',
    'run only these checks: codes or names, comma-separated or repeated (`meshflow checks`)',
    collect,
  )
  .action(async (mesh: string, opts: { json?: boolean; only?: string[] }) => {
    // Refused before connecting: a typo costs no worker start.
    const only = opts.only ? selectChecks(opts.only) : undefined;
    const { client } = await connectWithWorker();
    const checks = await verifyMesh(client, mesh, only);
    const count = (status: string) => checks.filter((c) => c.status === status).length;
    const [failed, passed, unsupported] = [count('failed'), count('passed'), count('not-supported')];
    const verdict = failed
      ? `${failed} of ${checks.length} checks failed`
      : `all ${passed} check${passed === 1 ? '' : 's'} passed`;
    const summary = `mesh ${mesh}: ${verdict}${unsupported ? ` (${unsupported} not supported here)` : ''}`;
    process.stdout.write(
      opts.json ? JSON.stringify(checks, null, 2) + '\n' : [summary, ...renderChecks(checks)].join('\n') + '\n',
    );
    if (failed) process.exitCode = 1;
  });

program
  .command('drift <mesh>')
  .description(
    'check a ready mesh for drift now: what its steps applied against the baseline, and every check; ' +
      'repairs by running the owning steps again unless the spec says drift.repair: false (exit 1 if drift stays)',
  )
  .option('--json', 'print the report as JSON')
  .action(async (mesh: string, opts: { json?: boolean }) => {
    const { client } = await connectWithWorker();
    const report = await driftMesh(client, mesh);
    process.stdout.write(
      opts.json ? JSON.stringify(report, null, 2) + '\n' : [`mesh ${mesh}:`, ...renderDrift(report)].join('\n') + '\n',
    );
    if (report.state === 'drifted' || report.state === 'unrepaired') process.exitCode = 1;
  });

program
  .command('rotate <mesh>')
  .addArgument(new Argument('<what>', 'intermediates, readers or root').choices(ROTATABLE))
  .description(
    'rotate credentials of a ready mesh: `intermediates` (a new CA per cluster from the same root; the old one ' +
      'is kept until its istiod issues from the new one), `readers` (fresh tokens in every remote secret) or ' +
      '`root` (every cluster trusts a new root beside the old, intermediates from the new one, the old root ' +
      'dropped after --grace; a mesh with your own root takes the new one from --root-cert and --root-key); ' +
      'then every check runs (exit 1 if the rotation failed)',
  )
  .option('--cluster <cluster>', 'only this cluster (readers: the links from or to it); repeatable', collect)
  .option('--grace <duration>', 'root: how long the old root stays trusted after the switch (default 24h)')
  .option('--finish', 'root: drop the old root now (the last stage), not when its grace ends')
  .option('--root-cert <file>', 'root of a mesh with your own root CA: the new root CA certificate (PEM)')
  .option('--root-key <file>', "root: the new root CA's unencrypted private key (PEM)")
  .option('--root-chain <file>', 'root: when --root-cert is an intermediate of your PKI, the CAs above it (PEM)')
  .option('--json', 'print the result as JSON')
  .action(async (mesh: string, what: string, opts: RotateOptions) => {
    if ((opts.rootCert === undefined) !== (opts.rootKey === undefined) || (opts.rootChain && !opts.rootCert))
      throw new Error('a new root CA needs both --root-cert FILE and --root-key FILE (--root-chain goes with them)');
    if (opts.rootCert !== undefined && what !== 'root')
      throw new Error('--root-cert and --root-key give a new root: they are for `rotate NAME root`');
    const { client } = await connectWithWorker();
    const req: RotateRequest = {
      what: what as RotateRequest['what'],
      ...(opts.cluster?.length ? { clusters: opts.cluster } : {}),
      ...(opts.grace ? { grace: opts.grace } : {}),
      ...(opts.finish ? { finish: true } : {}),
    };
    const files = opts.rootCert
      ? {
          certFile: path.resolve(opts.rootCert),
          keyFile: path.resolve(opts.rootKey!),
          ...(opts.rootChain ? { chainFile: path.resolve(opts.rootChain) } : {}),
        }
      : undefined;
    const out = await rotateMesh(
      client,
      mesh,
      req,
      files ? { files, store: trustStoreFromEnv(stateDir()) } : undefined,
    );
    if (opts.json) return void process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    const u = out.update;
    const s = await meshStatus(client, mesh);
    const lines = [`mesh ${mesh}: update ${u.id} ${u.state}: ${u.summary}`];
    for (const id of u.rerun) {
      const st = s.steps.find((x) => x.id === id);
      const o = st?.outputs ?? {};
      lines.push(
        what === 'readers'
          ? `  ${st?.cluster} -> ${st?.target}: new token, expires ${o.tokenExpiresAt}`
          : what === 'root' && opts.finish
            ? `  ${st?.cluster}: trusts ${o.trustedRoots}; ${o.trustTakenUp}`
            : `  ${st?.cluster}: generation ${o.caGeneration} (${o.caFingerprint}), ` +
              `expires ${o.caNotAfter}; ${o.caTakenUp}`,
      );
    }
    const r = s.rootRotation;
    if (what === 'root' && r?.dropAt)
      lines.push(`  root ${r.newRoot} in use; ${r.oldRoot} still trusted until ${r.dropAt} (--finish drops it now)`);
    if (u.error) lines.push(`  ${u.error}`);
    const failed = out.checks.filter((c) => c.status === 'failed');
    lines.push(failed.length ? `  ${failed.length} check(s) failed` : `  checks passed (${out.checks.length})`);
    if (failed.length) lines.push(...renderChecks(failed));
    process.stdout.write(lines.join('\n') + '\n');
    if (u.state !== 'applied') process.exitCode = 1;
  });

program
  .command('upgrade <mesh>')
  .description(
    "upgrade a ready mesh's Istio, canary by revision: the new version's control plane beside the old on each " +
      'cluster of a wave, its default tag moved and its workloads restarted, then every check; a wave that fails ' +
      'is rolled back with the waves before it (the mesh stays on the old version); when all passed the old ' +
      'revision is removed (exit 1 unless it was applied)',
  )
  .option('--to <version>', 'the Istio version to run: a patch release of a line meshflow pins (see doctor)')
  .option(
    '--waves <clusters>',
    'one wave: comma-separated primaries (remotes go with their primary); repeat for each wave, in order ' +
      '(default: one primary a wave)',
    collect,
  )
  .option('--approve-each', 'wait after each wave but the last for `upgrade NAME --continue` (or --abort)')
  .option('--continue', 'an upgrade waiting between waves: go on with the next wave')
  .option('--abort', 'an upgrade waiting between waves: roll back every wave it made')
  .option('--detach', 'return once the workflow has accepted the upgrade')
  .option('--json', 'print the update as it ended (or the status while it waits) as JSON')
  .action(async (mesh: string, opts: UpgradeOptions) => {
    const decisions = [opts.continue && 'continue', opts.abort && 'abort'].filter(Boolean);
    if (decisions.length > 1) throw new Error('--continue or --abort, not both');
    if (decisions.length && (opts.to || opts.waves || opts.approveEach))
      throw new Error('--continue and --abort answer an upgrade in progress: give no --to, --waves or --approve-each');
    if (!decisions.length && !opts.to)
      throw new Error('name the version to run: --to VERSION (meshflow doctor lists them)');
    const { client } = await connectWithWorker();
    let id: string;
    if (decisions.length) {
      const s = await meshStatus(client, mesh);
      id = [...(s.updates ?? [])].reverse().find((u) => u.state === 'running')?.id ?? '';
      process.stdout.write(
        `mesh ${mesh}: ${await decideUpgrade(client, mesh, decisions[0] as 'continue' | 'abort')}\n`,
      );
    } else {
      const waves = opts.waves?.map((w) =>
        w
          .split(',')
          .map((c) => c.trim())
          .filter(Boolean),
      );
      id = await startUpgrade(client, mesh, {
        to: opts.to!,
        ...(waves?.length ? { waves } : {}),
        ...(opts.approveEach ? { approveEach: true } : {}),
      });
      process.stdout.write(`mesh ${mesh}: upgrade ${id} accepted\n`);
    }
    if (!opts.detach) await followUpgrade(client, mesh, id, opts.json);
  });

interface UpgradeOptions {
  to?: string;
  waves?: string[];
  approveEach?: boolean;
  continue?: boolean;
  abort?: boolean;
  detach?: boolean;
  json?: boolean;
}

/** Prints an upgrade's waves and stages as they change, until it ends or waits for approval. */
async function followUpgrade(
  client: Awaited<ReturnType<typeof connect>>['client'],
  mesh: string,
  id: string,
  json?: boolean,
): Promise<void> {
  let last = '';
  for (;;) {
    const s = await meshStatus(client, mesh);
    const u = s.updates?.find((x) => x.id === id);
    const up = s.upgrade;
    if (up && !json) {
      const line = `  wave ${up.wave + 1}/${up.waves.length} (${up.waves[up.wave].join(', ')}): ${up.stage}`;
      if (line !== last) process.stdout.write(line + '\n');
      last = line;
    }
    if (up?.stage === 'awaiting-approval') {
      if (json) process.stdout.write(JSON.stringify({ upgrade: up, update: u }, null, 2) + '\n');
      else
        process.stdout.write(
          `mesh ${mesh}: wave ${up.wave + 1} of ${up.waves.length} passed and runs ${up.to.version}; the upgrade ` +
            `waits: meshflow upgrade ${mesh} --continue (next wave) or --abort (roll back every wave)\n`,
        );
      return;
    }
    if (!u || u.state !== 'running') {
      if (json) process.stdout.write(JSON.stringify({ update: u, checks: s.checks }, null, 2) + '\n');
      else {
        const lines = [`mesh ${mesh}: update ${id} ${u?.state ?? 'not found'}: ${u?.summary ?? ''}`];
        if (u?.error) lines.push(`  ${u.error}`);
        const failed = s.checks.filter((c) => c.status === 'failed');
        lines.push(failed.length ? `  ${failed.length} check(s) failed` : `  checks passed (${s.checks.length})`);
        if (failed.length) lines.push(...renderChecks(failed));
        process.stdout.write(lines.join('\n') + '\n');
      }
      if (u?.state !== 'applied') process.exitCode = 1;
      return;
    }
    await sleep(1000);
  }
}

interface RotateOptions {
  cluster?: string[];
  rootCert?: string;
  rootKey?: string;
  rootChain?: string;
  grace?: string;
  finish?: boolean;
  json?: boolean;
}

program
  .command('list')
  .description('meshes whose workflows are open')
  .action(async () => {
    const { client } = await connect();
    const rows = (await listMeshes(client)).map(
      (m) =>
        `${m.name.padEnd(20)} ${(m.phase ?? '?').padEnd(14)} ` +
        `${String(m.clusters ?? '?').padStart(3)} clusters  ${(m.provider ?? '').padEnd(9)}` +
        (m.createdBy ? `  created by ${m.createdBy}` : '') +
        (m.hostUnavailable ? `  HostUnavailable: ${m.hostUnavailable.host} since ${m.hostUnavailable.since}` : '') +
        (m.drift ? `  drift ${m.drift.state}: ${m.drift.found} found at ${m.drift.checkedAt}` : '') +
        (m.rotationDue ? `  ROTATION DUE: ${m.rotationDue.clusters.join(', ')} (retry ${m.rotationDue.retryAt})` : ''),
    );
    process.stdout.write(rows.length ? rows.join('\n') + '\n' : 'no meshes running\n');
  });

program
  .command('extend <mesh> <duration>')
  .description('move the mesh expiry later by DURATION (e.g. 2h)')
  .action(async (mesh: string, by: string) => {
    const { client } = await connectWithWorker();
    process.stdout.write(`mesh ${mesh} now expires at ${await extendMesh(client, mesh, by)}\n`);
  });

program
  .command('down <mesh>')
  .description('tear the mesh down (undo everything meshflow created, newest first)')
  .option('--wait', 'wait until teardown has finished')
  .option(
    '--abandon-host',
    "the mesh's host is gone for good: tear down from any worker what needs no host, list the host's remains",
  )
  .action(async (mesh: string, opts: { wait?: boolean; abandonHost?: boolean }) => {
    const { client } = await connectWithWorker();
    // The run signalled is the run followed: a scheduled mesh may run under another workflow id.
    let run;
    try {
      run = await teardownMesh(client, mesh, { abandonHost: opts.abandonHost });
    } catch (err) {
      // A signal to a run that has ended is "not found" too: say which it is.
      const ended = err instanceof WorkflowNotFoundError ? await endedRun(client, mesh) : undefined;
      if (!ended) throw err;
      const phase = ended.phase ? `, phase ${ended.phase}` : '';
      const at = ended.closedAt ? ` at ${ended.closedAt}` : '';
      process.stdout.write(
        `mesh ${mesh} has already ended (workflow ${ended.workflowId} ${ended.closed}${at}${phase}): ` +
          'nothing to tear down' +
          (ended.phase === 'deleted' ? '\n' : `; \`meshflow gc\` removes what it may have left\n`),
      );
      if (ended.phase !== 'deleted') process.exitCode = 1;
      return;
    }
    const abandoning = opts.abandonHost ? ', abandoning its host' : '';
    process.stdout.write(`mesh ${mesh}: teardown requested (workflow ${run.workflowId}${abandoning})\n`);
    if (opts.wait) {
      const final = await run.result();
      process.stdout.write(renderStatus(final));
      if (final.leftBehind.length) process.exitCode = 1;
    }
  });

program
  .command('replay <history...>')
  .description('replay recorded workflow histories (JSON) against this build: fails on non-determinism')
  .action(async (files: string[]) => {
    const { Worker } = await import('@temporalio/worker');
    const { historyFromJSON } = await import('@temporalio/common/lib/proto-utils.js');
    const { dataConverter } = await import('../temporal/codec.js');
    // One workflow bundle for all of them; each history is reported on its own.
    const histories = files.map((file) => ({
      workflowId: file,
      history: historyFromJSON(JSON.parse(fs.readFileSync(file, 'utf8'))),
    }));
    const failed: string[] = [];
    for await (const result of Worker.runReplayHistories(
      // An encrypted history replays with the keys it was written with (MESHFLOW_PAYLOAD_KEYS...).
      { workflowsPath: require.resolve('../workflow-bundle'), dataConverter: dataConverter() },
      histories,
    )) {
      if (result.error) {
        failed.push(result.workflowId);
        process.stderr.write(`${result.workflowId}: ${result.error.name}: ${result.error.message}\n`);
      } else {
        process.stdout.write(`${result.workflowId}: replayed without non-determinism\n`);
      }
    }
    if (failed.length) throw new Error(`${failed.length} of ${files.length} histories failed to replay`);
  });

const gcTargets = gcClusterOptions();
program
  .command('gc')
  .description(
    'remove what meshflow left for meshes with no open workflow: objects, local clusters, CA dirs, daemons, ' +
      'and the Secrets of the trust store MESHFLOW_TRUST_STORE names',
  )
  .option('--dry-run', 'only list what would be removed')
  .option('--json', 'print the findings as JSON')
  .option('--kubeconfig <file>', 'also search this cluster (repeatable or a comma list)', gcTargets.kubeconfig)
  .option('--context <name>', 'context of the --kubeconfig before it (repeatable or comma list)', gcTargets.context)
  .option('--provider <name>', 'also search a cloud: gke (with --project)')
  .option(
    '--project <id>',
    'GCP project to search with --provider gke (repeatable; default $GOOGLE_CLOUD_PROJECT)',
    (v: string, all: string[] = []) => [...all, ...v.split(',')],
  )
  .action(async (opts: { dryRun?: boolean; json?: boolean; provider?: string; project?: string[] }) => {
    if (opts.provider !== undefined && !providerIds().includes(opts.provider))
      throw new Error(`--provider ${opts.provider}: not a provider (${providerIds().join(', ')})`);
    const cloud =
      opts.provider === undefined ? undefined : providerRuntime(opts.provider, { stateDir: stateDir(), tools: {} });
    if (cloud && !cloud.garbage) {
      await cloud.close?.();
      throw new Error(`--provider ${opts.provider}: it has no cloud for gc to search`);
    }
    const projects = opts.project ?? (process.env.GOOGLE_CLOUD_PROJECT ? [process.env.GOOGLE_CLOUD_PROJECT] : []);
    if (cloud && !projects.length) {
      await cloud.close?.();
      throw new Error(
        `--provider ${opts.provider} needs --project P (or GOOGLE_CLOUD_PROJECT): it is searched one ` +
          `${cloud.garbage!.scope} at a time`,
      );
    }
    if (opts.project && !cloud) throw new Error('--project goes with --provider (gke)');
    // The store the workers use, read as they read it: a value of the wrong form stops gc before it asks anything.
    const trustStore = kubernetesLocationFromEnv();
    const temporal = await temporalIsOpen(); // refuses when Temporal does not answer: it never guesses
    try {
      const result = await collectGarbage({
        stateDir: stateDir(),
        clusters: gcTargets.clusters,
        ...(trustStore ? { trustStore } : {}),
        ...(cloud ? { clouds: [{ provider: opts.provider!, scopes: projects, search: cloud.garbage! }] } : {}),
        isOpen: temporal.isOpen,
        dryRun: opts.dryRun,
        progress: stderrProgress,
      });
      process.stdout.write(opts.json ? JSON.stringify(result, null, 2) + '\n' : renderGc(result));
      if (result.errors.length || result.findings.some((f) => f.action === 'failed')) process.exitCode = 1;
    } finally {
      await cloud?.close?.();
      await temporal.close();
    }
  });

const local = program
  .command('local')
  .description('local mode on this machine: the dev server, the background workers and the local clusters');
local
  .command('status')
  .description('each process local mode runs: running or not, its PID, address and log')
  .option('--json', 'as JSON: {stateDir, devServer, workers, etcd, clusters}')
  .action((opts: { json?: boolean }) => {
    const s = localStatus();
    process.stdout.write(opts.json ? JSON.stringify(s, null, 2) + '\n' : renderLocalStatus(s));
  });
local
  .command('stop')
  .description('stop the workers, the local clusters (their data stays) and the dev server')
  .option('--force', "stop even while local clusters run (open meshes' clusters stop; `down` still deletes them later)")
  .action(async (opts: { force?: boolean }) => {
    const stopped = await localStop(opts);
    process.stdout.write(`stopped: ${stopped.join(', ') || 'nothing was running'}\n`);
  });

program
  .command('kubeconfig <mesh> <cluster>')
  .description(
    "path of a cluster's kubeconfig: a local cluster's admin one, or the one meshflow wrote for a GKE cluster",
  )
  .action((mesh: string, cluster: string) => {
    const local = path.join(stateDir(), 'local', 'clusters', localClusterName(mesh, cluster), 'kubeconfig');
    const gke = path.join(stateDir(), 'gke', mesh, cluster, 'kubeconfig');
    const found = [local, gke].find((f) => fs.existsSync(f));
    if (!found)
      throw new Error(`no kubeconfig for cluster ${cluster} of mesh ${mesh} (looked for ${local} and ${gke})`);
    process.stdout.write(found + '\n');
  });

program
  .command('logs <mesh> <cluster> [component]')
  .description(
    `the log of a local cluster's process: ${['apiserver', ...COMPONENTS].join(', ')} or istiod-<revision> ` +
      '(default: the istiod of the revision that serves the cluster)',
  )
  .option('-n, --lines <count>', 'print the last COUNT lines (default: all)')
  .option('--path', 'print only where the log is')
  .action((mesh: string, cluster: string, component: string | undefined, opts: { lines?: string; path?: boolean }) => {
    const dir = path.join(stateDir(), 'local', 'clusters', localClusterName(mesh, cluster));
    const serving = fs.existsSync(path.join(dir, 'istiod-serving'))
      ? fs.readFileSync(path.join(dir, 'istiod-serving'), 'utf8').trim()
      : '';
    const which = component ?? istiodComponent(serving || undefined);
    if (
      ![...COMPONENTS, 'apiserver'].includes(which as (typeof COMPONENTS)[number]) &&
      !/^istiod-[a-z0-9-]+$/.test(which)
    ) {
      throw new Error(`no component ${which}: choose one of apiserver, ${COMPONENTS.join(', ')}, istiod-<revision>`);
    }
    const file = logFileOf(path.join(dir, `${which}.pid`));
    if (!fs.existsSync(file)) throw new Error(`no ${which} log for cluster ${cluster} of mesh ${mesh} (${file})`);
    if (opts.path) return void process.stdout.write(file + '\n');
    const text = fs.readFileSync(file, 'utf8');
    const lines = opts.lines ? Number(opts.lines) : undefined;
    process.stdout.write(lines ? text.trimEnd().split('\n').slice(-lines).join('\n') + '\n' : text);
  });

/** Ignored: lets a supervisor's PID check recognise the process (`meshflow team` gives it the worker's folder). */
const MARKER = new Option('--marker <text>').hideHelp();

program
  .command('worker')
  .description('run a meshflow worker in the foreground against TEMPORAL_ADDRESS (TLS, API key: see docs/operating.md)')
  .option('--shutdown-grace <duration>', 'on SIGTERM/SIGINT, how long running activities may take to finish', '30s')
  .addOption(MARKER)
  // Loaded here: the other commands need neither the worker SDK nor the activities.
  .action(async (opts: { shutdownGrace: string }) => (await import('./worker.js')).workerCommand(opts));

program
  .command('serve')
  .description(
    'serve the HTTP API: create, follow (SSE), extend, verify and tear down meshes; OpenAPI at /openapi.json',
  )
  .option('--port <n>', 'port to listen on', '8080')
  .option('--host <address>', 'address to listen on', '127.0.0.1')
  .option('--insecure-no-auth', 'serve without bearer tokens (only on a loopback host)')
  .addOption(MARKER)
  .action(serveCommand);

program.addCommand(scheduleCommand());
program.addCommand(teamCommand());

program
  .command('gke-emulator')
  .description('run the GKE emulator (ClusterManager gRPC, Compute REST) on 127.0.0.1; clusters are local clusters')
  .option('--port <n>', 'ClusterManager (gRPC) port (default: any free one)')
  .option('--compute-port <n>', 'Compute (REST) port (default: --port + 1, or any free one)')
  .option('--latency <f>', "scale of GKE's durations (create 300 s, delete 180 s)", '0.01')
  .option('--state-dir <dir>', 'where the emulated clusters live (default: <state dir>/gke-emulator)')
  .option('--reset', 'delete every emulated cluster and firewall rule, then exit')
  .action(gkeEmulatorCommand);

try {
  loadProviderModules(); // MESHFLOW_PROVIDERS: their ids are known before any spec is read
} catch (err) {
  process.stderr.write(`meshflow: ${(err as Error).message}\n`);
  process.exit(2);
}
program.parseAsync(process.argv).catch((err: unknown) => {
  const e = err as Error;
  // Temporal wraps the reason (an update validator's, a failed workflow's) in `cause`: show it.
  const reasons: string[] = [];
  for (let c = e.cause; c instanceof Error && reasons.length < 3; c = c.cause) if (c.message) reasons.push(c.message);
  const message =
    err instanceof WorkflowNotFoundError
      ? `no such mesh: ${err.workflowId?.replace(/^mesh\//, '') ?? e.message} has no open workflow ` +
        `(${err.workflowId ?? 'mesh/<name>'}); \`meshflow list\` shows the open meshes`
      : // An update's refusal or failure: its reason is the message ("Workflow Update failed" says nothing more).
        err instanceof WorkflowUpdateFailedError && reasons.length
        ? reasons.join(': ')
        : [e.message, ...reasons].join(': ');
  process.stderr.write(`meshflow: ${message}\n`);
  process.exitCode = process.exitCode || 1;
});
