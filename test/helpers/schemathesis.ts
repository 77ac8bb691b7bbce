// Schemathesis (PyPI), pinned, in a virtualenv of its own in the tool cache, installed as the
// pinned tools are: built in a scratch directory beside its final place and renamed into place only
// when complete (a failed install leaves nothing behind), with a progress line every 30 s. It is
// run as `python -m schemathesis.cli`, which, unlike the venv's scripts, works after the rename.
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { toolsDir } from '../../src/paths';
import { stderrProgress, withHeartbeat } from '../../src/util/progress';

export const SCHEMATHESIS_VERSION = '4.32.5';

/** The venv's python, installing schemathesis first when the cache has no complete copy. */
export async function schemathesisPython(progress = stderrProgress): Promise<string> {
  const dir = path.join(toolsDir(), `schemathesis-${SCHEMATHESIS_VERSION}`);
  const python = path.join(dir, 'bin', 'python');
  if (fs.existsSync(python)) return python;
  const scratch = path.join(toolsDir(), `.tmp-schemathesis-${SCHEMATHESIS_VERSION}-${process.pid}`);
  progress(`installing schemathesis ${SCHEMATHESIS_VERSION} into ${dir} (pip, about a minute)`);
  try {
    await execa('python3', ['-m', 'venv', scratch]);
    const pip = execa(
      path.join(scratch, 'bin', 'python'),
      ['-m', 'pip', 'install', '--disable-pip-version-check', '-q', `schemathesis==${SCHEMATHESIS_VERSION}`],
      { all: true, reject: false },
    );
    const result = await withHeartbeat(progress, 'installing schemathesis', pip);
    if (result.exitCode !== 0)
      throw new Error(`pip install schemathesis==${SCHEMATHESIS_VERSION} failed:\n${result.all}`);
    fs.renameSync(scratch, dir);
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
  return python;
}
