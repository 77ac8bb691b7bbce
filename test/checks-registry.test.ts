// The check registry: every check of verify is in the catalog once, with a stable code of its
// domain, and bound once to what it does; the CLI and docs/checks.md speak the same codes, and a
// failed check points at its section there.
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { CHECKS, checkByCode, replaceChecks, selectChecks } from '../src/checks/catalog';
import { checksPage } from '../src/checks/docs-page';
import { REGISTRY } from '../src/checks/registry';
import { renderChecks } from '../src/cli/render';

const root = path.resolve(__dirname, '..');
const cli = path.join(root, 'dist', 'cli', 'main.js');
const GROUP: Record<string, string> = {
  '01': 'trust',
  '02': 'control plane',
  '03': 'links',
  '04': "Istio's view",
  '05': 'traffic',
};

test('every code is unique, of its domain, and bound to exactly one implementation', () => {
  const codes = CHECKS.map((c) => c.code);
  expect(new Set(codes).size).toBe(codes.length);
  expect(new Set(CHECKS.map((c) => c.name)).size).toBe(codes.length);
  for (const c of CHECKS) {
    expect(c.code).toMatch(/^MF0[1-5]\d\d$/);
    expect({ code: c.code, domain: c.domain }).toEqual({ code: c.code, domain: GROUP[c.code.slice(2, 4)] });
    for (const text of [c.title, c.runsOn, c.proves, c.whenFailed]) expect(text.length).toBeGreaterThan(5);
  }
  expect(REGISTRY.map((r) => r.code).sort()).toEqual([...codes].sort());
});

test('checks are chosen by code (any case) or name; an unknown one is named in the refusal', () => {
  expect(selectChecks(['remote-secret', 'mf0101,MF0102'])).toEqual(['MF0101', 'MF0102', 'MF0301']);
  expect(() => selectChecks(['MF0101', 'MF9999', 'cacert'])).toThrow(/no check "MF9999", "cacert".*meshflow checks/);
  expect(() => selectChecks([' , '])).toThrow(/no check named/);
  expect(checkByCode('mf0405')?.name).toBe('analyze');
});

test('results of some checks replace the earlier results of those checks in place; the others stay', () => {
  const r = (name: string, detail: string, code?: string) => ({ ...(code ? { code } : {}), name, detail });
  const before = [r('cacerts', 'old 1'), r('cacerts', 'old 2'), r('same-root', 'old', 'MF0102')];
  expect(replaceChecks(before, [r('cacerts', 'new', 'MF0101')], ['MF0101'])).toEqual([
    r('cacerts', 'new', 'MF0101'),
    r('same-root', 'old', 'MF0102'),
  ]);
  expect(replaceChecks(before, [r('analyze', 'new', 'MF0405')], ['MF0405'])).toEqual([
    ...before,
    r('analyze', 'new', 'MF0405'),
  ]);
});

test('a failed check prints its code, the fix and its section of docs/checks.md; a passed one a line', () => {
  const lines = renderChecks([
    { code: 'MF0101', name: 'cacerts', cluster: 'c1', status: 'failed', detail: 'gone', hint: 're-run up' },
    { name: 'same-root', status: 'passed', detail: 'one root' },
  ]);
  expect(lines[0].split('\n').map((l) => l.trim())).toEqual([
    'failed        MF0101 cacerts (c1): gone',
    'fix: re-run up',
    'see: docs/checks.md#mf0101',
  ]);
  // Results recorded before codes get theirs from the name.
  expect(lines[1].trim()).toBe('passed        MF0102 same-root: one root');
});

test('docs/checks.md is the catalog as `meshflow checks --markdown` prints it, one anchor per code', async () => {
  const shipped = fs.readFileSync(path.join(root, 'docs', 'checks.md'), 'utf8');
  // When this fails: npx meshflow checks --markdown > docs/checks.md
  expect(shipped).toBe(checksPage());
  expect((await execa(process.execPath, [cli, 'checks', '--markdown'])).stdout + '\n').toBe(shipped);
  for (const c of CHECKS) {
    expect(shipped.split(`<a id="${c.code.toLowerCase()}"></a>`)).toHaveLength(2);
    expect(shipped).toContain(`[${c.code}](#${c.code.toLowerCase()})`);
  }
});

test('`meshflow checks` lists the catalog; `verify --only` refuses an unknown check before connecting', async () => {
  const listed = (await execa(process.execPath, [cli, 'checks'])).stdout.split('\n');
  for (const c of CHECKS) expect(listed).toContainEqual(expect.stringMatching(new RegExp(`^${c.code}  ${c.name} `)));
  const json = JSON.parse((await execa(process.execPath, [cli, 'checks', '--json'])).stdout) as typeof CHECKS;
  expect(json.map((c) => c.code)).toEqual(CHECKS.map((c) => c.code));
  // No Temporal address is reachable: a refusal that came from connecting would say so.
  const r = await execa(process.execPath, [cli, 'verify', 'demo', '--only', 'MF0101,bogus'], {
    reject: false,
    env: { TEMPORAL_ADDRESS: '127.0.0.1:1' },
  });
  expect({ exitCode: r.exitCode, stderr: r.stderr }).toEqual({
    exitCode: 1,
    stderr: 'meshflow: no check "bogus": give codes (MF0101) or names (cacerts); `meshflow checks` lists them',
  });
});
