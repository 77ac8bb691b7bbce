// Human-readable output for plans and mesh status.
import type { TrustStatus } from '../workflows/trust-view';
import { type Plan, criticalPath } from '../plan/plan';
import { formatDurationMs } from '../spec/duration';
import { meshWorkflowId } from '../workflows/definitions';
import { CHECKS, CHECKS_PAGE, codeOf, docsLink } from '../checks/catalog';
import type { CheckResult, DriftStatus, MeshStatus, StepStatus } from '../workflows/types';

/** A block of lines (a check and its fix under it) moved two columns right. */
const indent = (l: string) => `  ${l.replaceAll('\n', '\n  ')}`;

export function renderPlan(plan: Plan): string {
  const lines = [`plan for mesh ${plan.mesh}: ${plan.steps.length} steps`, ''];
  for (const s of plan.steps) {
    lines.push(`${s.id}`);
    lines.push(`    creates: ${s.creates}`);
    if (s.undo) lines.push(`    undo:    ${s.undo}`);
    if (s.dependsOn.length)
      lines.push(`    after:   ${s.kind === 'verify' ? 'all other steps' : s.dependsOn.join(', ')}`);
  }
  const cp = criticalPath(plan);
  lines.push('', `critical path (~${formatDurationMs(cp.estimateMs)} estimated): ${cp.steps.join(' -> ')}`);
  return lines.join('\n') + '\n';
}

const MARK: Record<StepStatus['state'], string> = {
  pending: ' ',
  running: '~',
  done: '+',
  failed: 'x',
  undoing: '<',
  undone: '-',
  'undo-failed': '!',
  kept: 'k',
};

/** "; forgotten by every istiod 1.2 s after its links were removed" (nothing when not proven). */
export function forgotIn(afterMs?: number): string {
  return afterMs === undefined
    ? ''
    : `; forgotten by every istiod ${(afterMs / 1000).toFixed(1)} s after its links were removed`;
}

export function renderStatus(s: MeshStatus, uiUrl?: string, createdBy?: string): string {
  const lines = [`mesh ${s.mesh}: ${s.phase}${s.expiresAt && s.phase === 'ready' ? ` (expires ${s.expiresAt})` : ''}`];
  if (createdBy) lines.push(`created by: ${createdBy} (API token)`);
  if (s.error) lines.push(`error: ${s.error}`);
  // Conditions that say something beyond the phase: a host gone, checks failing, an update running, drift.
  for (const c of s.conditions ?? []) {
    if (c.type === 'HostUnavailable') lines.push(`HostUnavailable since ${c.since}: ${c.message}`);
    else if (
      (c.type === 'Ready' && c.status === 'False' && s.phase === 'ready') ||
      (c.type !== 'Ready' && c.status === 'True')
    )
      lines.push(`${c.type}=${c.status} (${c.reason}) since ${c.lastTransitionTime}: ${c.message}`);
  }
  const last = s.updates?.at(-1);
  if (last) {
    lines.push(
      `last update ${last.id}: ${last.state} (${last.summary}) at ${last.endedAt ?? last.requestedAt}` +
        (last.error ? `\n  ${last.error}` : ''),
    );
    for (const f of last.forgotten ?? []) lines.push(`  ${f.cluster} removed: ${f.detail}${forgotIn(f.afterMs)}`);
  }
  const u = s.upgrade;
  if (u) {
    const rev = (r?: string) => r ?? 'default';
    lines.push(
      `upgrade ${u.from.version} (revision ${rev(u.from.revision)}) -> ${u.to.version} (revision ${u.to.revision}): ` +
        `wave ${u.wave + 1}/${u.waves.length} (${u.waves[u.wave].join(', ')}) ${u.stage}; ` +
        `${u.passed} wave(s) passed`,
    );
    u.waves.forEach((w, i) => {
      const moved = i < u.passed || (i === u.wave && u.stage !== 'installing');
      lines.push(`  wave ${i + 1}: ${w.join(', ')} on ${moved ? u.to.revision : rev(u.from.revision)}`);
    });
    if (u.stage === 'awaiting-approval')
      lines.push(
        `  waiting since ${u.awaitingSince}: meshflow upgrade ${s.mesh} --continue (next wave) or --abort (roll back)`,
      );
  }
  const groups = new Map<string, StepStatus[]>();
  for (const step of s.steps) {
    const key = step.cluster ?? '(mesh)';
    groups.set(key, [...(groups.get(key) ?? []), step]);
  }
  for (const [cluster, steps] of groups) {
    lines.push(`  ${cluster}`);
    for (const st of steps) {
      const took =
        st.startedAt && st.endedAt
          ? ` ${((Date.parse(st.endedAt) - Date.parse(st.startedAt)) / 1000).toFixed(1)}s`
          : '';
      const out = st.outputs
        ? ' ' +
          Object.entries(st.outputs)
            .map(([k, v]) => `${k}=${v}`)
            .join(' ')
        : '';
      lines.push(
        `    [${MARK[st.state]}] ${st.kind}${st.target ? ` -> ${st.target}` : ''}${took}${out}${st.lastError ? `  (${st.lastError})` : ''}`,
      );
    }
  }
  if (s.checks.length) {
    lines.push(`  checks${s.verifiedAt ? ` (re-run ${s.verifiedAt})` : ''}`);
    lines.push(...renderChecks(s.checks).map(indent));
  }
  if (s.drift) lines.push(...renderDrift(s.drift).map(indent));
  if (s.trust) lines.push(...renderTrust(s.trust).map((l) => `  ${l}`));
  const r = s.rootRotation;
  if (r) {
    const stage =
      r.stage === 'switched'
        ? `every intermediate is the new root's; the old stays trusted until ${r.dropAt} ` +
          `(rotate ${s.mesh} root --finish drops it now)`
        : `both roots trusted, intermediates not all switched yet: run rotate ${s.mesh} root again`;
    lines.push(`  root rotation: ${r.oldRoot} -> ${r.newRoot}, ${stage}`);
  }
  if (s.leftBehind.length) {
    lines.push('  left behind (could not be removed)');
    for (const l of s.leftBehind) lines.push(`    ${JSON.stringify(l.resource)}: ${l.error}`);
  }
  if (uiUrl)
    lines.push(`  Web UI: ${uiUrl}/namespaces/default/workflows/${encodeURIComponent(meshWorkflowId(s.mesh))}`);
  return lines.join('\n') + '\n';
}

/** The root, each intermediate and each reader token, with their expiry; a due intermediate flagged. */
export function renderTrust(t: TrustStatus): string[] {
  const lines = [
    `trust (intermediates rotate ${t.rotateBefore === 'off' ? 'on request only' : `${t.rotateBefore} before expiry`})`,
  ];
  if (t.root)
    lines.push(
      `  root ${t.root.fingerprint ?? '?'} (${t.root.source ?? '?'}), expires ${t.root.notAfter ?? 'unknown'}`,
    );
  for (const i of t.intermediates) {
    lines.push(
      `  ${i.cluster}: intermediate ${i.fingerprint ?? '?'} (generation ${i.generation}), expires ${i.notAfter}` +
        (t.due.includes(i.cluster) ? '  DUE FOR ROTATION' : i.rotateAt ? `, rotates at ${i.rotateAt}` : ''),
    );
  }
  for (const r of t.readers) lines.push(`  reader ${r.source} -> ${r.target}: token expires ${r.expiresAt}`);
  return lines;
}

/** One line per check (its code, name and cluster), with the likely cause, fix and docs page under each failed one. */
export function renderChecks(checks: CheckResult[]): string[] {
  return checks.map((c) => {
    const code = codeOf(c);
    const where = c.cluster ? ` (${c.cluster})` : '';
    const head = `  ${c.status.padEnd(13)} ${code ? `${code} ` : ''}${c.name}${where}: ${c.detail}`;
    if (c.status !== 'failed') return head;
    const under = '\n                ';
    return head + (c.hint ? `${under}fix: ${c.hint}` : '') + (code ? `${under}see: ${docsLink(code)}` : '');
  });
}

/** The catalog as `meshflow checks` prints it: code, name, where it runs, title. */
export function renderCatalog(): string[] {
  const width = Math.max(...CHECKS.map((c) => c.name.length));
  return [
    ...CHECKS.map((c) => `${c.code}  ${c.name.padEnd(width)}  ${c.title}; runs on ${c.runsOn}`),
    '',
    `Each is documented at ${CHECKS_PAGE}#<code>; \`meshflow verify <mesh> --only <code,...>\` runs some of them.`,
  ];
}

/** A drift report: what it found, item by item, and what ran again to repair it. */
export function renderDrift(d: DriftStatus): string[] {
  const found = `${d.items.length} of ${d.objects} object(s) drifted, ${d.failedChecks.length} check(s) failed`;
  const lines = [
    `drift ${d.state} (checked ${d.checkedAt}, ${d.trigger === 'timer' ? 'on schedule' : 'on request'}): ${found}`,
  ];
  for (const i of d.items) lines.push(`  ${i.kind.padEnd(13)} ${i.object || i.cluster}: ${i.detail}`);
  if (d.failedChecks.length) lines.push(...renderChecks(d.failedChecks));
  if (d.repaired.length) lines.push(`  repaired by running again: ${d.repaired.join(', ')}`);
  if (d.error) lines.push(`  error: ${d.error}`);
  return lines;
}
