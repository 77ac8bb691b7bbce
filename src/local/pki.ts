// The PKI of one local cluster: its own CA, the API server's serving certificate, an admin
// client certificate (group system:masters) and the service-account token signing keys.
// Generated once into the cluster's directory and reused on restart.
import fs from 'node:fs';
import path from 'node:path';
import { certificatePem, generateKeyPair, issue, privateKeyPem, publicKeyPem, x509 } from '../pki/certs';

export interface ClusterPki {
  dir: string;
  caCert: string;
  servingCert: string;
  servingKey: string;
  adminCert: string;
  adminKey: string;
  saPublicKey: string;
  saPrivateKey: string;
}

const FILES = {
  caCert: 'ca.crt',
  servingCert: 'apiserver.crt',
  servingKey: 'apiserver.key',
  adminCert: 'admin.crt',
  adminKey: 'admin.key',
  saPublicKey: 'sa.pub',
  saPrivateKey: 'sa.key',
} as const;

export function pkiPaths(dir: string): ClusterPki {
  const out = { dir } as ClusterPki;
  for (const [k, f] of Object.entries(FILES)) (out as unknown as Record<string, string>)[k] = path.join(dir, f);
  return out;
}

const KU = x509.KeyUsageFlags;

export async function ensureClusterPki(dir: string, clusterName: string, serviceIp: string): Promise<ClusterPki> {
  const paths = pkiPaths(dir);
  if (Object.values(FILES).every((f) => fs.existsSync(path.join(dir, f)))) return paths;
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const [caKey, servingKey, adminKey, saKey] = await Promise.all([0, 1, 2, 3].map(() => generateKeyPair('ecdsa-p256')));
  const caCert = await issue(
    {
      subject: `CN=meshflow-local-${clusterName}-ca`,
      days: 3650,
      ca: {},
      keyUsages: KU.keyCertSign | KU.cRLSign | KU.digitalSignature,
    },
    caKey,
  );
  const ca = { certificate: caCert, key: caKey };
  const serving = await issue(
    {
      subject: 'CN=kube-apiserver',
      days: 825,
      keyUsages: KU.digitalSignature | KU.keyEncipherment,
      extendedKeyUsages: ['1.3.6.1.5.5.7.3.1'],
      dnsNames: [
        'localhost',
        'kubernetes',
        'kubernetes.default',
        'kubernetes.default.svc',
        'kubernetes.default.svc.cluster.local',
      ],
      ipAddresses: ['127.0.0.1', serviceIp],
    },
    servingKey,
    ca,
  );
  const admin = await issue(
    {
      subject: 'CN=meshflow-admin, O=system:masters',
      days: 825,
      keyUsages: KU.digitalSignature | KU.keyEncipherment,
      extendedKeyUsages: ['1.3.6.1.5.5.7.3.2'],
    },
    adminKey,
    ca,
  );
  const write = (file: string, content: string) => fs.writeFileSync(file, content, { mode: 0o600 });
  write(paths.servingCert, certificatePem(serving));
  write(paths.servingKey, await privateKeyPem(servingKey));
  write(paths.adminCert, certificatePem(admin));
  write(paths.adminKey, await privateKeyPem(adminKey));
  write(paths.saPublicKey, await publicKeyPem(saKey));
  write(paths.saPrivateKey, await privateKeyPem(saKey));
  // The CA certificate is written last: its presence with the others marks a complete set.
  write(paths.caCert, certificatePem(caCert));
  return paths;
}
