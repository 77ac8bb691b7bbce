// gc's CLI helpers: whether a mesh is open (Temporal), --kubeconfig/--context, the table.
import path from 'node:path';
import { Client } from '@temporalio/client';
import { openRunsOf } from '../client';
import { connectTo, temporalTarget } from '../temporal/connection';
import { connectionOptions } from '../temporal/connection-options';
import { dataConverter } from '../temporal/codec';
import { type GcCluster, GcRefused, type GcResult, messageOf } from './types';

// ---------------------------------------------------------------------------------------------
// CLI helpers: Temporal, --kubeconfig/--context, the table.

/**
 * isOpen backed by Temporal: whether any run of the mesh name is open, mesh/<name> or one a
 * schedule started under another id (openRunsOf: each run found is described, strongly consistent).
 */
export function meshIsOpen(client: Client): (mesh: string) => Promise<boolean> {
  return async (mesh) => (await openRunsOf(client, mesh)).length > 0;
}

/**
 * Connects to the Temporal that runs the meshes (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE). Unlike the
 * other commands, gc never starts a local server: a fresh or different server would know no
 * workflows, and every mesh would look like garbage.
 */
export async function temporalIsOpen(): Promise<{
  isOpen: (mesh: string) => Promise<boolean>;
  close: () => Promise<void>;
}> {
  const target = temporalTarget();
  const connection = await connectTo(connectionOptions(target.address), 2000).catch((err: Error) => {
    throw new GcRefused(
      `${err.message}: gc cannot tell which meshes still have an open workflow, ` +
        'so it changed nothing. Start the Temporal server that runs your meshes (for the local one, any ' +
        'command such as `meshflow list` starts it) or point TEMPORAL_ADDRESS at it.',
    );
  });
  try {
    await connection.workflowService.describeNamespace({ namespace: target.namespace });
  } catch (err) {
    await connection.close();
    const why = messageOf(err);
    const ns = target.namespace;
    throw new GcRefused(`Temporal at ${target.address} cannot describe namespace ${ns} (${why}); gc changed nothing`);
  }
  const client = new Client({ connection, namespace: target.namespace, dataConverter: dataConverter() });
  return { isOpen: meshIsOpen(client), close: () => connection.close() };
}

/**
 * Commander option parsers for `--kubeconfig FILE [--context C]`, both repeatable or comma lists:
 * each --context belongs to the --kubeconfig before it (one cluster per context; none: the current one).
 */
export function gcClusterOptions(): {
  kubeconfig: (v: string) => GcCluster[];
  context: (v: string) => GcCluster[];
  clusters: GcCluster[];
} {
  const groups: Array<{ kubeconfig: string; contexts: string[] }> = [];
  const split = (v: string) =>
    v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  const clusters: GcCluster[] = [];
  const rebuild = () => {
    clusters.length = 0;
    for (const g of groups) {
      if (g.contexts.length) for (const context of g.contexts) clusters.push({ kubeconfig: g.kubeconfig, context });
      else clusters.push({ kubeconfig: g.kubeconfig });
    }
    return clusters;
  };
  return {
    clusters,
    kubeconfig: (v) => {
      for (const file of split(v)) groups.push({ kubeconfig: path.resolve(file), contexts: [] });
      return rebuild();
    },
    context: (v) => {
      if (!groups.length) throw new Error(`--context ${v} must follow the --kubeconfig it belongs to`);
      groups[groups.length - 1].contexts.push(...split(v));
      return rebuild();
    },
  };
}

export function renderGc(r: GcResult): string {
  const short = (w: string) =>
    w.startsWith(r.stateDir + path.sep) ? path.join('<state>', path.relative(r.stateDir, w)) : w;
  const rows = r.findings.map((f) => [f.kind, short(f.where), f.mesh, f.what, f.action, f.reason ?? '']);
  const lines: string[] = [];
  if (rows.length) {
    const header = ['KIND', 'WHERE', 'MESH', 'WHAT', 'ACTION', 'REASON'];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
    const line = (row: string[]) =>
      row
        .map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i])))
        .join('  ')
        .trimEnd();
    lines.push(line(header), ...rows.map(line));
  } else {
    lines.push("nothing of meshflow's found");
  }
  lines.push('', `state directory: ${r.stateDir}`);
  for (const w of r.warnings) lines.push(`warning: ${w}`);
  for (const e of r.errors) lines.push(`error: ${e}`);
  lines.push(r.summary);
  return lines.join('\n') + '\n';
}
