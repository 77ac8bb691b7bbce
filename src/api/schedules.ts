// The schedule operations of the API (`/v1/schedules`), as `meshflow schedule` does them (through
// src/schedules/schedules.ts): the sweep and recurring meshes as Temporal Schedules. Same token,
// same error shape as the mesh routes: 400 with problems, 404 unknown id, 409 already exists.
import type { HttpBindings } from '@hono/node-server';
import { type OpenAPIHono, type RouteConfig, createRoute, z } from '@hono/zod-openapi';
import type { Client } from '@temporalio/client';
import {
  NoScheduleError,
  OVERLAPS,
  ScheduleExistsError,
  ScheduleInputError,
  type ScheduleView,
  createMeshSchedule,
  createSweepSchedule,
  deleteSchedule,
  describeSchedule,
  listSchedules,
  pauseSchedule,
  triggerSchedule,
  unpauseSchedule,
} from '../schedules/schedules';
import { ApiError } from './errors';
import { parseSpec } from './meshes';
import { ErrorSchema } from './schemas';

const DEADLINE_MS = 10_000;
const JSON_TYPE = 'application/json';
const TAGS = ['schedules'];

export const ScheduleSchema = z
  .object({
    id: z.string().openapi({ example: 'meshflow-mesh-demo' }),
    kind: z.enum(['sweep', 'mesh', 'other']),
    mesh: z.string().optional(),
    spec: z.string().openapi({ description: 'when it runs, as given', example: 'every 5m' }),
    keptLimit: z.string().optional().openapi({ description: 'the sweep: kept meshes older than this are torn down' }),
    summary: z.string().optional().openapi({ description: "what each run is: the mesh's clusters, topology, TTL" }),
    overlap: z.string().optional().openapi({ description: 'describe only: skip, buffer-one or allow-all' }),
    paused: z.boolean(),
    nextRuns: z.array(z.string()),
    recentActions: z.array(
      z.object({
        scheduledAt: z.string(),
        workflowId: z.string(),
        runId: z.string(),
        outcome: z.string().optional().openapi({
          description: 'what the run came to',
          example: 'skipped: mesh demo is already running as mesh/demo',
        }),
      }),
    ),
  })
  .openapi('Schedule');

const ScheduleListSchema = z.object({ schedules: z.array(ScheduleSchema) }).openapi('ScheduleList');

/** A duration as `meshflow schedule` takes it (30s, 5m, 1h30m); positive where `positive` (some digit not 0). */
const DURATION = '^(\\d+[smhd])+$';
const POSITIVE_DURATION = '^(?=.*[1-9])(\\d+[smhd])+$';

/**
 * The document states what the handler enforces beyond the fields (see create below): exactly one
 * of every and cron; a mesh schedule has a spec and no keptLimit, the sweep no spec. The handler
 * checks them itself, to answer each with its own message.
 */
export const CreateScheduleBody = z
  .strictObject({
    kind: z.enum(['sweep', 'mesh']),
    spec: z
      .union([z.string(), z.record(z.string(), z.unknown())])
      .optional()
      .openapi({
        description: 'kind mesh: the mesh spec, as YAML text or as a JSON object (validated as `meshflow validate`)',
      }),
    every: z.string().optional().openapi({
      description: 'a positive duration (at least 5m for kind mesh: 5m, 1h); or cron',
      example: '5m',
      pattern: POSITIVE_DURATION,
    }),
    cron: z
      .string()
      .optional()
      .openapi({ description: 'a cron expression; or every', example: '0 9 * * 1-5', pattern: '\\S' }),
    overlap: z
      .enum(Object.keys(OVERLAPS) as [keyof typeof OVERLAPS])
      .optional()
      .openapi({ description: 'skip (default) or buffer-one; allow-all is refused: two runs of one mesh collide' }),
    paused: z.boolean().optional(),
    keptLimit: z
      .string()
      .optional()
      .openapi({ description: 'kind sweep: default 24h', example: '24h', pattern: DURATION }),
  })
  .openapi('CreateSchedule', {
    allOf: [
      { oneOf: [{ required: ['every'] }, { required: ['cron'] }] },
      {
        oneOf: [
          { properties: { kind: { type: 'string', enum: ['sweep'] } }, not: { required: ['spec'] } },
          {
            properties: { kind: { type: 'string', enum: ['mesh'] } },
            required: ['spec'],
            not: { required: ['keptLimit'] },
          },
        ],
      },
    ],
  });

const IdParams = z.object({
  id: z
    .string()
    .regex(/^meshflow-(sweep|mesh-[a-z0-9-]{1,40})$/, 'must be meshflow-sweep or meshflow-mesh-<name>')
    .openapi({ example: 'meshflow-sweep' }),
});

const json = <S extends z.ZodType>(schema: S, description: string) => ({
  content: { [JSON_TYPE]: { schema } },
  description,
});
const err = (description: string) => json(ErrorSchema, description);
const E400 = err('bad input: a duration, cron expression, overlap policy or spec (`problems` says where)');
const E401 = err('no bearer token, or not one this API accepts');
const E404 = err('no such schedule');
const E503 = err('Temporal did not answer');
const steer = (verb: string, summary: string, code: 200 | 202) =>
  createRoute({
    method: 'post',
    path: `/v1/schedules/{id}/${verb}`,
    tags: TAGS,
    summary,
    request: { params: IdParams },
    responses: { [code]: json(ScheduleSchema, 'the schedule after it'), 400: E400, 401: E401, 404: E404, 503: E503 },
  });

export const scheduleRoutes = {
  listSchedules: createRoute({
    method: 'get',
    path: '/v1/schedules',
    tags: TAGS,
    summary: "meshflow's schedules",
    responses: { 200: json(ScheduleListSchema, 'the schedules'), 401: E401, 503: E503 },
  }),
  createSchedule: createRoute({
    method: 'post',
    path: '/v1/schedules',
    tags: TAGS,
    summary: 'Create the sweep (meshflow-sweep) or a recurring mesh (meshflow-mesh-<name>)',
    request: { body: { required: true, content: { [JSON_TYPE]: { schema: CreateScheduleBody } } } },
    responses: {
      201: json(ScheduleSchema, 'created'),
      400: E400,
      401: E401,
      409: err('a schedule with that id already exists'),
      413: err('the body is over 1 MiB'),
      415: err('the body is not JSON'),
      503: E503,
    },
  }),
  describeSchedule: createRoute({
    method: 'get',
    path: '/v1/schedules/{id}',
    tags: TAGS,
    summary: 'One schedule',
    request: { params: IdParams },
    responses: { 200: json(ScheduleSchema, 'the schedule'), 400: E400, 401: E401, 404: E404, 503: E503 },
  }),
  deleteSchedule: createRoute({
    method: 'delete',
    path: '/v1/schedules/{id}',
    tags: TAGS,
    summary: 'Delete a schedule (runs it started go on until their TTL)',
    request: { params: IdParams },
    responses: { 200: json(z.object({ id: z.string() }), 'deleted'), 400: E400, 401: E401, 404: E404, 503: E503 },
  }),
  pauseSchedule: steer('pause', 'Stop taking actions', 200),
  unpauseSchedule: steer('unpause', 'Take actions again', 200),
  triggerSchedule: steer('trigger', 'Take the action now (skipped while a run it started is open)', 202),
} satisfies Record<string, RouteConfig>;

/** Adds the schedule routes to the app (after its auth, path and body checks). */
export function addScheduleRoutes(
  app: OpenAPIHono<{ Bindings: HttpBindings }>,
  client: Client,
  fileRoots: string[],
): void {
  const temporal = <T>(fn: () => Promise<T>): Promise<T> =>
    client.connection.withDeadline(Date.now() + DEADLINE_MS, fn).catch((e: unknown) => {
      throw known(e);
    });
  const r = scheduleRoutes;
  app.use(r.createSchedule.path, async (c, next) => {
    const type = (c.req.header('content-type') ?? '').split(';')[0].trim().toLowerCase();
    if (c.req.method === 'POST' && type !== JSON_TYPE)
      throw new ApiError(
        415,
        'unsupported_media_type',
        `Content-Type ${type ? `"${type}"` : 'missing'}: this takes ${JSON_TYPE}`,
      );
    await next();
  });
  app.openapi(r.listSchedules, async (c) => c.json({ schedules: await temporal(() => listSchedules(client)) }, 200));
  app.openapi(r.createSchedule, async (c) => {
    const body = c.req.valid('json');
    const id = await temporal(() => create(client, body, fileRoots));
    return c.json(await temporal(() => describeSchedule(client, id)), 201);
  });
  app.openapi(r.describeSchedule, async (c) =>
    c.json(await temporal(() => describeSchedule(client, c.req.valid('param').id)), 200),
  );
  app.openapi(r.deleteSchedule, async (c) => {
    const { id } = c.req.valid('param');
    await temporal(() => deleteSchedule(client, id));
    return c.json({ id }, 200);
  });
  const steered = (fn: (client: Client, id: string) => Promise<void>) => async (id: string) =>
    temporal(async () => {
      await fn(client, id);
      return describeSchedule(client, id);
    });
  app.openapi(r.pauseSchedule, async (c) => c.json(await steered(pauseSchedule)(c.req.valid('param').id), 200));
  app.openapi(r.unpauseSchedule, async (c) => c.json(await steered(unpauseSchedule)(c.req.valid('param').id), 200));
  app.openapi(r.triggerSchedule, async (c) => c.json(await steered(triggerSchedule)(c.req.valid('param').id), 202));
}

async function create(client: Client, body: z.infer<typeof CreateScheduleBody>, fileRoots: string[]): Promise<string> {
  const when = { every: body.every, cron: body.cron, overlap: body.overlap, paused: body.paused };
  if (body.kind === 'sweep') {
    if (body.spec !== undefined) throw invalidInput('spec', 'the sweep takes no spec');
    return createSweepSchedule(client, { ...when, keptLimit: body.keptLimit });
  }
  if (body.keptLimit !== undefined) throw invalidInput('keptLimit', 'keptLimit is for the sweep');
  if (body.spec === undefined) throw invalidInput('spec', 'a mesh schedule needs the mesh spec');
  const spec =
    typeof body.spec === 'string'
      ? parseSpec(body.spec, false, fileRoots)
      : parseSpec(JSON.stringify(body.spec, null, 2), true, fileRoots);
  return createMeshSchedule(client, spec, when);
}

const invalidInput = (path: string, message: string) => known(new ScheduleInputError([{ path, message }]));

/** The schedule module's errors as API answers; anything else goes on to the app's error handler. */
function known(e: unknown): unknown {
  if (e instanceof ScheduleInputError)
    return new ApiError(
      400,
      'invalid_schedule',
      e.message,
      e.problems.map((p) => ({ ...p, text: `${p.path}: ${p.message}` })),
    );
  if (e instanceof ScheduleExistsError) return new ApiError(409, 'schedule_exists', e.message);
  if (e instanceof NoScheduleError) return new ApiError(404, 'schedule_not_found', e.message);
  return e;
}

/** Fails to compile when the schema no longer describes what `meshflow schedule describe --json` prints. */
export type ScheduleDescribed = ScheduleView extends z.infer<typeof ScheduleSchema> ? true : never;
