// The README's command table is honest: every command it lists exists, and every flag it gives a
// command is one that command takes (its --help says so). The generated pages are held by
// checks-registry.test.ts and json-schema.test.ts.
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';

const root = path.resolve(__dirname, '..');
const cli = path.join(root, 'dist', 'cli', 'main.js');
const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');

/** Each form of each row of the table under "## Commands": `up FILE [--detach]`, `local stop [--force]`... */
function commandForms(): string[] {
  // The first table after the heading, up to its last row.
  const lines = readme.slice(readme.indexOf('\n## Commands\n')).split('\n');
  const start = lines.findIndex((l) => l.startsWith('| command |'));
  const end = lines.findIndex((l, i) => i > start && !l.startsWith('|'));
  const forms: string[] = [];
  for (const line of lines.slice(start + 2, end)) {
    const cell = /^\| (`.+?`) \| /.exec(line)?.[1];
    expect({ line, cell: Boolean(cell) }).toEqual({ line, cell: true });
    for (const m of cell!.matchAll(/`([^`]+)`/g)) forms.push(...alternatives(m[1].replaceAll('\\|', '|')));
  }
  return forms;
}

/** `schedule describe|pause ID` is two forms: `schedule describe ID`, `schedule pause ID`. */
function alternatives(form: string): string[] {
  const tokens = form.split(/\s+/);
  const at = tokens.findIndex(
    (t, i) => /^[a-z-]+(\|[a-z-]+)+$/.test(t) && tokens.slice(0, i).every((w) => /^[a-z-]+$/.test(w)),
  );
  if (at < 0) return [form];
  return tokens[at].split('|').map((w) => [...tokens.slice(0, at), w, ...tokens.slice(at + 1)].join(' '));
}

/** The command words of a form (up to its first argument or flag) and the flags it names. */
function parse(form: string): { words: string[]; flags: string[] } {
  const words: string[] = [];
  for (const token of form.split(/\s+/)) {
    if (!/^[a-z][a-z-]*$/.test(token)) break;
    words.push(token);
  }
  const flags = [...new Set([...form.matchAll(/(?<![\w-])(--?[a-z][a-z-]*)/g)].map((m) => m[1]))];
  return { words, flags };
}

test('every command of the README table exists and takes the flags the table gives it', async () => {
  const forms = commandForms();
  expect(forms.length).toBeGreaterThan(30);
  const problems: string[] = [];
  const queue = [...forms];
  const work = async () => {
    for (let form = queue.shift(); form !== undefined; form = queue.shift()) {
      const { words, flags } = parse(form);
      const r = await execa(process.execPath, [cli, ...words, '--help'], { reject: false });
      // The usage line names the command --help describes; words past it are argument values (`create sweep`).
      const usage = /^Usage: meshflow (.*)$/m.exec(r.stdout)?.[1] ?? '';
      const said = usage.split(/\s+/);
      const matched = words.findIndex((w, i) => said[i] !== w);
      const commandWords = matched < 0 ? words.length : matched;
      const argumentSlots = said.filter((t) => /^[<[][a-z]/.test(t) && t !== '[options]' && t !== '[command]').length;
      if (r.exitCode !== 0 || commandWords === 0 || words.length - commandWords > argumentSlots) {
        problems.push(`${form}: no such command (${usage || r.stderr.split('\n')[0]})`);
        continue;
      }
      for (const flag of flags)
        if (!new RegExp(`(^|[\\s,])${flag}\\b`, 'm').test(r.stdout)) problems.push(`${form}: ${flag}`);
    }
  };
  await Promise.all([work(), work(), work(), work()]);
  expect(problems).toEqual([]);
});

/** GitHub's anchor of a heading: lowercase, punctuation but '-' and '_' dropped, spaces to '-'. */
const slug = (heading: string) =>
  heading
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');

/** The anchors of a Markdown file's headings (outside code blocks). */
function anchors(file: string): Set<string> {
  const out = new Set<string>();
  const text = fs.readFileSync(file, 'utf8');
  let code = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('```')) code = !code;
    const h = code ? null : /^#{1,6} (.*)$/.exec(line);
    if (h) out.add(slug(h[1]));
  }
  // Anchors a page sets itself (docs/checks.md: one per code).
  for (const m of text.matchAll(/<a (?:id|name)="([^"]+)"/g)) out.add(m[1]);
  return out;
}

test('every link between the README and the docs pages leads to a page and a heading that exist', () => {
  const pages = ['README.md', ...fs.readdirSync(path.join(root, 'docs')).filter((f) => f.endsWith('.md'))].map((f) =>
    f === 'README.md' ? path.join(root, f) : path.join(root, 'docs', f),
  );
  const broken: string[] = [];
  let checked = 0;
  for (const page of pages) {
    const text = fs
      .readFileSync(page, 'utf8')
      .replace(/```[\s\S]*?```/g, '')
      .replace(/`[^`\n]*`/g, '');
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const href = m[1];
      if (/^[a-z]+:/.test(href)) continue; // http(s), mailto
      const [file, anchor] = href.split('#');
      const target = file ? path.resolve(path.dirname(page), file) : page;
      checked++;
      if (!fs.existsSync(target)) broken.push(`${path.relative(root, page)}: ${href} (no such file)`);
      else if (anchor && target.endsWith('.md') && !anchors(target).has(anchor))
        broken.push(`${path.relative(root, page)}: ${href} (no such heading)`);
    }
  }
  expect(broken).toEqual([]);
  expect(checked).toBeGreaterThan(30);
});
