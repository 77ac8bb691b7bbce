// The Temporal servers tests use are real: a workflow's activity runs through the dev server,
// and a day-long timer completes at once on the time-skipping server.
import { Worker } from '@temporalio/worker';
import * as activities from './fixtures/activities';
import { inspectClusters, sleepADay } from './fixtures/workflows';
import { devServer, timeSkippingServer } from './helpers/temporal';

const workflowsPath = require.resolve('./fixtures/workflows');

test('a workflow runs its activities on the Temporal dev server', async () => {
  const env = await devServer();
  try {
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: 'foundation',
      workflowsPath,
      activities,
    });
    const result = await worker.runUntil(
      env.client.workflow.execute(inspectClusters, {
        taskQueue: 'foundation',
        workflowId: 'inspect-1',
        args: [['east', 'west']],
      }),
    );
    expect(result).toEqual([`east (attempt 1, pid ${process.pid})`, `west (attempt 1, pid ${process.pid})`]);
    const history = await env.client.workflow.getHandle('inspect-1').fetchHistory();
    const scheduled = history.events!.filter((e) => e.activityTaskScheduledEventAttributes);
    expect(scheduled.map((e) => e.activityTaskScheduledEventAttributes!.activityType!.name)).toEqual([
      'describeCluster',
      'describeCluster',
    ]);
  } finally {
    await env.teardown();
  }
});

test('a workflow sleeping 24 hours completes at once on the time-skipping server', async () => {
  const env = await timeSkippingServer();
  try {
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: 'skipping',
      workflowsPath,
      activities,
    });
    const wallStart = Date.now();
    const result = await worker.runUntil(
      env.client.workflow.execute(sleepADay, { taskQueue: 'skipping', workflowId: 'sleeper' }),
    );
    expect(result).toBe('slept 24h of workflow time');
    expect(Date.now() - wallStart).toBeLessThan(60 * 60 * 1000); // far less than the day it slept
  } finally {
    await env.teardown();
  }
});
