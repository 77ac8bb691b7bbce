// Real Temporal servers for tests: the pinned Temporal CLI dev server, and Temporal's
// time-skipping test server, both started from the tool cache (never downloaded).
import type { Client } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DEV_SERVER_ARGS } from '../../src/temporal/connection';
import { MESH_SEARCH_ATTRIBUTES, searchAttributeRegistrations } from '../../src/temporal/search-attributes';
import { tool } from './env';

/**
 * The dev server as meshflow starts it; `dynamicConfig` adds settings (e.g. a low continue-as-new threshold),
 * `ui` serves its Web UI on a port with extra arguments (e.g. --ui-codec-endpoint); without, no UI.
 */
export function devServer(
  dynamicConfig: Record<string, string | number> = {},
  ui?: { port: number; args: string[] },
): Promise<TestWorkflowEnvironment> {
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: tool('temporal') },
      ip: '127.0.0.1',
      ui: !!ui,
      uiPort: ui?.port,
      searchAttributes: Object.values(MESH_SEARCH_ATTRIBUTES),
      log: { format: 'pretty', level: 'warn' },
      extraArgs: [
        ...DEV_SERVER_ARGS,
        ...(ui?.args ?? []),
        ...Object.entries(dynamicConfig).flatMap(([k, v]) => ['--dynamic-config-value', `${k}=${v}`]),
      ],
    },
  });
}

export async function timeSkippingServer(): Promise<TestWorkflowEnvironment> {
  const env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: tool('temporal-test-server') } },
  });
  await env.connection.operatorService.addSearchAttributes({
    namespace: 'default',
    searchAttributes: searchAttributeRegistrations(),
  });
  return env;
}

/** Every workflow run the namespace holds, as `<workflow id>@<run id>`, sorted. */
export async function workflowRuns(client: Client): Promise<string[]> {
  const runs: string[] = [];
  for await (const wf of client.workflow.list()) runs.push(`${wf.workflowId}@${wf.runId}`);
  return runs.sort();
}
