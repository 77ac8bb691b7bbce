// Google's Online Boutique (GoogleCloudPlatform/microservices-demo), generated from a table of
// its services rather than copied: the images, ports and environment are those of the project's
// release/kubernetes-manifests.yaml at tag v0.10.5, without the load generator, the
// LoadBalancer Service, health probes and security contexts. Split across clusters it makes
// a dozen gRPC calls cross the mesh for one page view, which a single echo cannot show.
import {
  type SampleApp,
  clustersWith,
  componentsIn,
  deployment,
  ingress,
  namespace,
  service,
  serviceAccount,
} from './common';

const NS = 'boutique';

// v0.10.5 is the last release published under google-samples; v0.10.6 moved the images to the
// project's CI registry (us-central1-docker.pkg.dev/online-boutique-ci).
const image = (name: string) => `us-central1-docker.pkg.dev/google-samples/microservices-demo/${name}:v0.10.5`;

type Component =
  | 'frontend'
  | 'productcatalogservice'
  | 'recommendationservice'
  | 'cartservice'
  | 'emailservice'
  | 'checkoutservice'
  | 'paymentservice'
  | 'currencyservice'
  | 'shippingservice'
  | 'adservice';

interface Microservice {
  /** name of the Deployment, Service and ServiceAccount, and the pods' app label */
  name: string;
  /** the placement component that brings it (redis-cart goes with cartservice) */
  component: Component;
  image: string;
  /** Service port: the one other services dial */
  port: number;
  /** the container's port, when not the Service's */
  listen?: number;
  /** Istio reads the protocol from this name */
  portName: 'http' | 'grpc' | 'tcp-redis';
  /** environment variable -> the service it names; filled in as <service>:<port> from this table */
  calls?: Record<string, string>;
  env?: Record<string, string>;
}

const SERVICES: Microservice[] = [
  {
    name: 'frontend',
    component: 'frontend',
    image: image('frontend'),
    port: 80,
    listen: 8080,
    portName: 'http',
    calls: {
      PRODUCT_CATALOG_SERVICE_ADDR: 'productcatalogservice',
      CURRENCY_SERVICE_ADDR: 'currencyservice',
      CART_SERVICE_ADDR: 'cartservice',
      RECOMMENDATION_SERVICE_ADDR: 'recommendationservice',
      SHIPPING_SERVICE_ADDR: 'shippingservice',
      CHECKOUT_SERVICE_ADDR: 'checkoutservice',
      AD_SERVICE_ADDR: 'adservice',
    },
    // The frontend refuses to start without SHOPPING_ASSISTANT_SERVICE_ADDR but dials it only
    // when ENABLE_ASSISTANT is set, so it names the upstream service that we do not run.
    env: { PORT: '8080', SHOPPING_ASSISTANT_SERVICE_ADDR: 'shoppingassistantservice:80', ENABLE_PROFILER: '0' },
  },
  {
    name: 'productcatalogservice',
    component: 'productcatalogservice',
    image: image('productcatalogservice'),
    port: 3550,
    portName: 'grpc',
    env: { PORT: '3550', DISABLE_PROFILER: '1' },
  },
  {
    name: 'recommendationservice',
    component: 'recommendationservice',
    image: image('recommendationservice'),
    port: 8080,
    portName: 'grpc',
    calls: { PRODUCT_CATALOG_SERVICE_ADDR: 'productcatalogservice' },
    env: { PORT: '8080', DISABLE_PROFILER: '1' },
  },
  {
    // Listens on 7070 by its own configuration: the upstream manifest sets no PORT.
    name: 'cartservice',
    component: 'cartservice',
    image: image('cartservice'),
    port: 7070,
    portName: 'grpc',
    calls: { REDIS_ADDR: 'redis-cart' },
  },
  {
    // Upstream runs the floating redis:alpine; pinned here.
    name: 'redis-cart',
    component: 'cartservice',
    image: 'docker.io/library/redis:7.4.2-alpine',
    port: 6379,
    portName: 'tcp-redis',
  },
  {
    name: 'emailservice',
    component: 'emailservice',
    image: image('emailservice'),
    port: 5000,
    listen: 8080,
    portName: 'grpc',
    env: { PORT: '8080', DISABLE_PROFILER: '1' },
  },
  {
    name: 'checkoutservice',
    component: 'checkoutservice',
    image: image('checkoutservice'),
    port: 5050,
    portName: 'grpc',
    calls: {
      PRODUCT_CATALOG_SERVICE_ADDR: 'productcatalogservice',
      SHIPPING_SERVICE_ADDR: 'shippingservice',
      PAYMENT_SERVICE_ADDR: 'paymentservice',
      EMAIL_SERVICE_ADDR: 'emailservice',
      CURRENCY_SERVICE_ADDR: 'currencyservice',
      CART_SERVICE_ADDR: 'cartservice',
    },
    env: { PORT: '5050' },
  },
  {
    name: 'paymentservice',
    component: 'paymentservice',
    image: image('paymentservice'),
    port: 50051,
    portName: 'grpc',
    env: { PORT: '50051', DISABLE_PROFILER: '1' },
  },
  {
    name: 'currencyservice',
    component: 'currencyservice',
    image: image('currencyservice'),
    port: 7000,
    portName: 'grpc',
    env: { PORT: '7000', DISABLE_PROFILER: '1' },
  },
  {
    name: 'shippingservice',
    component: 'shippingservice',
    image: image('shippingservice'),
    port: 50051,
    portName: 'grpc',
    env: { PORT: '50051', DISABLE_PROFILER: '1' },
  },
  {
    name: 'adservice',
    component: 'adservice',
    image: image('adservice'),
    port: 9555,
    portName: 'grpc',
    env: { PORT: '9555' },
  },
];

const COMPONENTS: Component[] = [
  'frontend',
  'productcatalogservice',
  'recommendationservice',
  'cartservice',
  'emailservice',
  'checkoutservice',
  'paymentservice',
  'currencyservice',
  'shippingservice',
  'adservice',
];
// With two clusters or more: what a page view needs first, then checkout and the rest.
const FIRST: Component[] = ['frontend', 'productcatalogservice', 'recommendationservice', 'cartservice'];
const SECOND = COMPONENTS.filter((c) => !FIRST.includes(c));

function address(name: string): string {
  const target = SERVICES.find((s) => s.name === name);
  if (!target) throw new Error(`online-boutique: no service ${name} in the table`);
  return `${name}:${target.port}`;
}

function serviceObject(s: Microservice): object {
  return service(NS, s.name, { app: s.name }, { name: s.portName, port: s.port, targetPort: s.listen ?? s.port });
}

function workload(s: Microservice): object[] {
  const calls = Object.fromEntries(Object.entries(s.calls ?? {}).map(([env, name]) => [env, address(name)]));
  return [
    // An account per service gives each its own mesh identity, to which policies can refer.
    serviceAccount(NS, s.name),
    deployment(
      NS,
      s.name,
      { app: s.name },
      {
        name: 'server',
        image: s.image,
        env: { ...s.env, ...calls },
        containerPort: s.listen ?? s.port,
        requests: { cpu: '50m', memory: '64Mi' },
      },
      s.name,
    ),
  ];
}

export const onlineBoutiqueApp: SampleApp = {
  name: 'online-boutique',
  components: COMPONENTS,
  isComponent: (name) => (COMPONENTS as string[]).includes(name),

  defaultPlacement(clusters) {
    if (clusters.length === 0) return {};
    if (clusters.length === 1) return { [clusters[0]]: [...COMPONENTS] };
    return { [clusters[0]]: [...FIRST], [clusters[1]]: [...SECOND] };
  },

  manifests(cluster, placement) {
    const placed = componentsIn(onlineBoutiqueApp, cluster, placement);
    if (!placed.length) return [];
    return [
      namespace(NS, true),
      // Every Service in every cluster that runs a part: names must resolve where they are
      // dialled, and the mesh routes to whichever cluster runs the pods.
      ...SERVICES.map(serviceObject),
      ...SERVICES.filter((s) => placed.includes(s.component)).flatMap(workload),
      ...(placed.includes('frontend')
        ? ingress(NS, 'frontend-gateway', 'frontend-ingress', [
            { prefix: '/', host: `frontend.${NS}.svc.cluster.local`, port: 80 },
          ])
        : []),
    ];
  },

  probes(placement) {
    // The home page's <title> (src/frontend/templates/header.html) unless CYMBAL_BRANDING is set.
    const ingressProbes = clustersWith(placement, 'frontend').map((cluster) => ({
      cluster,
      path: '/',
      expect: 'Online Boutique',
    }));
    return { exec: [], ingress: ingressProbes };
  },
};
