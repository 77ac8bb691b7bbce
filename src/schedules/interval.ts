// How often a schedule may run: the shortest gap between two of its ticks, read from `--every` or
// from a cron expression as Temporal reads one (5 fields; 6 with a year; 7 with seconds first and
// a year; or @every, @hourly, ...). Computed before anything is created.
import { parseDuration } from '../spec/duration';

const DAY_MINUTES = 24 * 60;

/** The values a numeric cron field matches in [min, max]: `*`, `n`, `a-b`, with a step (`/n`), in comma lists. */
function fieldValues(field: string, min: number, max: number): number[] | undefined {
  const values = new Set<number>();
  for (const part of field.split(',')) {
    const m = /^(\*|(\d+)(?:-(\d+))?)(?:\/(\d+))?$/.exec(part);
    if (!m) return undefined;
    const step = m[4] ? Number(m[4]) : 1;
    const from = m[1] === '*' ? min : Number(m[2]);
    const to = m[1] === '*' || (m[4] && !m[3]) ? max : m[3] ? Number(m[3]) : from;
    if (step < 1 || from < min || to > max) return undefined;
    for (let v = from; v <= to; v += step) values.add(v);
  }
  return [...values].sort((a, b) => a - b);
}

/**
 * The shortest gap between two ticks of a cron expression, in ms; undefined when it cannot be told
 * (then Temporal, which parses it, has the last word on whether it is valid). Days are assumed to
 * follow one another (a lower bound when the day fields skip some), which errs on the short side.
 */
export function cronMinGapMs(expr: string): number | undefined {
  const text = expr
    .replace(/#.*$/, '')
    .trim()
    .replace(/^(CRON_)?TZ=\S+\s+/, '');
  const every = /^@every\s+(\S+?)(?:\/\S+)?$/.exec(text);
  if (every) return parseDuration(every[1]);
  const named: Record<string, number> = {
    '@yearly': 365,
    '@annually': 365,
    '@monthly': 28,
    '@weekly': 7,
    '@daily': 1,
    '@midnight': 1,
  };
  if (text === '@hourly') return 3_600_000;
  if (named[text]) return named[text] * DAY_MINUTES * 60_000;
  const fields = text.split(/\s+/);
  if (fields.length < 5 || fields.length > 7) return undefined;
  const [seconds, minute, hour] = fields.length === 7 ? fields : ['0', ...fields];
  const secs = fieldValues(seconds, 0, 59);
  const minutes = fieldValues(minute, 0, 59);
  const hours = fieldValues(hour, 0, 23);
  if (!secs || !minutes || !hours) return undefined;
  if (secs.length > 1) return shortestGap(secs, 60) * 1000;
  return (
    shortestGap(
      hours.flatMap((h) => minutes.map((m) => h * 60 + m)),
      DAY_MINUTES,
    ) * 60_000
  );
}

/** The shortest gap between sorted points on a circle of `period` (the last to the first goes round). */
function shortestGap(points: number[], period: number): number {
  const gaps = points.slice(1).map((p, i) => p - points[i]);
  return Math.min(...gaps, period - points[points.length - 1] + points[0]);
}
