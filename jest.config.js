// Jest runs TypeScript through swc. Several dependencies (execa, @kubernetes/client-node and theirs)
// ship only ES modules, which Jest can load on Node 20 only after compiling them to CommonJS, so
// those packages (found by their package.json "type") are transformed too; everything else in
// node_modules, including Temporal's native bridge, is loaded as it is.
const fs = require('node:fs');
const path = require('node:path');

function esmPackages(root) {
  const names = [];
  if (!fs.existsSync(root)) return names;
  // Nested node_modules hold other versions of the same names, so the list may repeat names.
  for (const entry of fs.readdirSync(root)) {
    const dirs = entry.startsWith('@') ? fs.readdirSync(path.join(root, entry)).map((n) => `${entry}/${n}`) : [entry];
    for (const name of dirs) {
      try {
        const pkg = JSON.parse(fs.readFileSync(path.join(root, name, 'package.json'), 'utf8'));
        if (pkg.type === 'module') names.push(name);
      } catch {
        // not a package directory (.bin, .cache)
      }
      names.push(...esmPackages(path.join(root, name, 'node_modules')));
    }
  }
  return names;
}

const esm = [...new Set(esmPackages(path.join(__dirname, 'node_modules')))].map((n) => n.replace(/[.+]/g, '\\$&'));

module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  globalSetup: '<rootDir>/test/global-setup.ts',
  globalTeardown: '<rootDir>/test/global-teardown.ts',
  // Tests start real servers (API servers, Temporal); two cores run two test files at a time.
  maxWorkers: 2,
  testTimeout: 120_000,
  transform: { '^.+\\.(t|j)sx?$': ['@swc/jest'] },
  // unicorn-magic exports only an "import" condition, which Jest's CommonJS resolver does not try.
  moduleNameMapper: { '^unicorn-magic$': '<rootDir>/node_modules/unicorn-magic/node.js' },
  transformIgnorePatterns: [`/node_modules/(?!(${esm.join('|')})/)`],
};
