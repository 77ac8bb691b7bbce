// Trust entries as files in the worker's state directory, in the layout meshflow has always used
// (`meshes/<mesh>/ca/root-key.pem`, `.../ca/<cluster>/ca-cert.pem`, mode 0600): local mode's
// default, and what meshes started before the store existed find again. Only the host that owns
// the directory can read them, so a mesh using this store runs its trust steps on that host only.
import fs from 'node:fs';
import path from 'node:path';
import { withLock } from '../util/lock';
import type { Resource } from '../steps/contract';
import { type MeshEntries, type TrustStore, checkEntryNames } from './store';

/** A mesh's CA directory in a state directory. */
export function caDir(stateDir: string, mesh: string): string {
  return path.join(stateDir, 'meshes', mesh, 'ca');
}

/** Written to a temporary name and renamed, so a reader never sees half a PEM. */
function writeAtomically(file: string, content: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, content, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

function readIfThere(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Entries in one directory: a mesh's CA directory, or any directory a test names. */
export class DirectoryEntries implements MeshEntries {
  constructor(readonly dir: string) {}

  private file(name: string): string {
    return path.join(this.dir, ...name.split('/'));
  }

  async get(name: string): Promise<string | undefined> {
    checkEntryNames([name]);
    return readIfThere(this.file(name));
  }

  /**
   * Under a lock shared by processes and by calls of this one. Files are written in the order
   * given, the last one marking the set complete: a set half written by a crashed writer is
   * written again whole.
   */
  async putIfAbsent(entries: Record<string, string>): Promise<Record<string, string>> {
    const names = Object.keys(entries);
    checkEntryNames(names);
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    return withLock(path.join(this.dir, 'entries'), async () => {
      const there = names.map((n) => readIfThere(this.file(n)));
      if (there.every((v) => v !== undefined)) return Object.fromEntries(names.map((n, i) => [n, there[i]!]));
      for (const n of names) {
        fs.mkdirSync(path.dirname(this.file(n)), { recursive: true, mode: 0o700 });
        writeAtomically(this.file(n), entries[n]);
      }
      return { ...entries };
    });
  }

  async list(): Promise<string[]> {
    return this.names();
  }

  async remove(names: string[]): Promise<void> {
    checkEntryNames(names);
    await withLock(path.join(this.dir, 'entries'), async () => {
      for (const n of names) fs.rmSync(this.file(n), { force: true });
    });
  }

  /** Entry files, without locks and temporary files. */
  names(): string[] {
    if (!fs.existsSync(this.dir)) return [];
    return (fs.readdirSync(this.dir, { recursive: true }) as string[])
      .map((f) => f.split(path.sep).join('/'))
      .filter((f) => !f.split('/').some((s) => s.endsWith('.lock') || s.endsWith('.tmp')))
      .filter((f) => fs.statSync(this.file(f)).isFile())
      .sort();
  }
}

export class StateDirTrustStore implements TrustStore {
  readonly shared = false;
  constructor(readonly stateDir: string) {}

  get where(): string {
    return `state directory ${this.stateDir}`;
  }

  entries(mesh: string): DirectoryEntries {
    return new DirectoryEntries(caDir(this.stateDir, mesh));
  }

  async get(mesh: string, name: string): Promise<string | undefined> {
    return this.entries(mesh).get(name);
  }

  putIfAbsent(mesh: string, entries: Record<string, string>): Promise<Record<string, string>> {
    return this.entries(mesh).putIfAbsent(entries);
  }

  async list(mesh: string): Promise<string[]> {
    return this.entries(mesh).names();
  }

  async removeEntries(mesh: string, names: string[]): Promise<void> {
    const entries = this.entries(mesh);
    await entries.remove(names);
    if (!entries.names().length) await this.deleteMesh(mesh);
  }

  async deleteMesh(mesh: string): Promise<void> {
    fs.rmSync(caDir(this.stateDir, mesh), { recursive: true, force: true });
  }

  /** A file resource, as meshes made before the store recorded theirs: undo removes the directory. */
  ledgerResource(mesh: string): Resource {
    return { type: 'file', path: caDir(this.stateDir, mesh) };
  }
}
