// Progress lines for long steps (tool builds, cluster start): written to stderr so that
// machine-readable output on stdout (--json) stays clean.
export type Progress = (line: string) => void;

export const stderrProgress: Progress = (line) => {
  process.stderr.write(`[meshflow] ${line}\n`);
};

export const silent: Progress = () => undefined;

export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

/** Runs `work` and reports "still <what>" every `everyMs` until it settles. */
export async function withHeartbeat<T>(
  progress: Progress,
  what: string,
  work: Promise<T>,
  everyMs = 30_000,
): Promise<T> {
  const started = Date.now();
  const timer = setInterval(() => progress(`still ${what} (${formatDuration(Date.now() - started)})`), everyMs);
  try {
    return await work;
  } finally {
    clearInterval(timer);
  }
}
