// Durations as users write them in specs and on the command line: 90s, 30m, 2h, 7d (or combined, 1h30m).
/** A mesh lives at least 5 minutes and at most 30 days from when it becomes ready or is extended. */
export const MIN_TTL_MS = 5 * 60_000;
export const MAX_TTL_MS = 30 * 86_400_000;
/** Drift checks run at most once a minute (spec `drift.every`). */
export const MIN_DRIFT_EVERY_MS = 60_000;
/** A cluster's intermediate CA lives between an hour and ten years (spec `trust.intermediateValidity`). */
export const MIN_INTERMEDIATE_VALIDITY_MS = 3_600_000;
export const MAX_INTERMEDIATE_VALIDITY_MS = 3650 * 86_400_000;
/** How long a cluster's intermediate lives when the spec does not say (Istio's tools/certs: 730 days). */
export const DEFAULT_INTERMEDIATE_VALIDITY = '730d';
/** How long before its expiry a ready mesh rotates an intermediate when the spec does not say. */
export const DEFAULT_ROTATE_BEFORE = '30d';
/** The interval of drift checks, in ms; undefined when they are off (`every: off`: on request only). */
export function driftEveryMs(every: string): number | undefined {
  return every === 'off' ? undefined : parseDuration(every);
}

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION = /^(?:\d+[smhd])+$/;

export function parseDuration(text: string): number | undefined {
  if (!DURATION.test(text)) return undefined;
  let ms = 0;
  for (const [, n, unit] of text.matchAll(/(\d+)([smhd])/g)) ms += Number(n) * UNIT_MS[unit];
  return ms;
}

export function formatDurationMs(ms: number): string {
  const parts: string[] = [];
  let rest = Math.round(ms / 1000);
  for (const [unit, size] of [
    ['d', 86_400],
    ['h', 3_600],
    ['m', 60],
    ['s', 1],
  ] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  return parts.join('') || '0s';
}
