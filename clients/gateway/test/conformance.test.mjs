// The official Durable Streams server conformance suite
// (@durable-streams/server-conformance-tests, pinned in package.json)
// against a running gateway: CONFORMANCE_TEST_URL=http://host:port.
// Run with: npx vitest run test/conformance.test.mjs  (conformance.mjs does it)
import { runConformanceTests } from '@durable-streams/server-conformance-tests';

runConformanceTests({ baseUrl: process.env.CONFORMANCE_TEST_URL });
