// docs/checks.md, made from the catalog so that it cannot drift from it: one section per code,
// its anchor the lower-case code (`docs/checks.md#mf0101`, the link a failed check prints).
import { CHECKS, type CheckDomain } from './catalog';

const DOMAINS: Array<[CheckDomain, string]> = [
  ['trust', 'MF01xx: trust'],
  ['control plane', 'MF02xx: control plane'],
  ['links', 'MF03xx: links between clusters'],
  ["Istio's view", "MF04xx: Istio's own view"],
  ['traffic', 'MF05xx: traffic'],
];

export function checksPage(): string {
  const lines = [
    '# Checks',
    '',
    '<!-- Made from src/checks/catalog.ts by `meshflow checks --markdown > docs/checks.md`; a test compares them. -->',
    '',
    '`meshflow up` ends with these checks, `meshflow verify <mesh>` runs them again, and',
    '`meshflow verify <mesh> --only MF0101,MF0301` runs some of them (codes or names). Each result carries its',
    'code; a failed one prints its likely cause, the fix and a link here. A check fails only on a definite',
    'answer: errors that may pass (5xx, 429, resets, timeouts) are retried for 30 s, and if they last, the',
    'verification is retried by Temporal instead of reporting a failure. A check that cannot run where the mesh',
    'is (traffic on clusters on this machine, whose pods kwok plays) says `not-supported`, never `passed`.',
    '',
    '| code | name | title | runs on |',
    '| --- | --- | --- | --- |',
    ...CHECKS.map((c) => `| [${c.code}](#${c.code.toLowerCase()}) | \`${c.name}\` | ${c.title} | ${c.runsOn} |`),
  ];
  for (const [domain, heading] of DOMAINS) {
    lines.push('', `## ${heading}`);
    for (const c of CHECKS.filter((x) => x.domain === domain)) {
      lines.push(
        '',
        `<a id="${c.code.toLowerCase()}"></a>`,
        '',
        `### ${c.code} \`${c.name}\`: ${c.title}`,
        '',
        `Runs on ${c.runsOn}.`,
        '',
        `**Proves.** ${c.proves}`,
        '',
        `**When it fails.** ${c.whenFailed}`,
      );
    }
  }
  return lines.join('\n') + '\n';
}
