// Drives the Jolokia 2 JavaScript client (npm jolokia.js) against the agent
// URL given as argv[2], once with GET and once with POST, and prints one
// JSON line per call: {"method","call","ok","value"|"error"}. The Go test
// (exporters/jolokia/jolokiajs_test.go) checks the values.
import Jolokia from "jolokia.js";

const url = process.argv[2];
const calls = {
  version: { type: "version" },
  attribute: { type: "read", mbean: "kafka.server:type=ReplicaManager,name=UnderReplicatedPartitions", attribute: "Value" },
  search: { type: "search", mbean: "kafka.server:type=BrokerTopicMetrics,*" },
  pattern: { type: "read", mbean: "kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec,*", attribute: "Count" },
};

for (const method of ["get", "post"]) {
  const j = new Jolokia({ url, method });
  for (const [call, req] of Object.entries(calls)) {
    try {
      // With no callbacks, request() resolves to the parsed response; a
      // non-JSON content type would resolve to a string instead.
      const resp = await j.request(req);
      if (typeof resp !== "object" || resp === null || Array.isArray(resp)) {
        console.log(JSON.stringify({ method, call, ok: false, error: "not a JSON response object: " + typeof resp }));
        continue;
      }
      if (resp.status !== 200) {
        console.log(JSON.stringify({ method, call, ok: false, error: resp.error_type + ": " + resp.error }));
        continue;
      }
      console.log(JSON.stringify({ method, call, ok: true, value: resp.value }));
    } catch (e) {
      console.log(JSON.stringify({ method, call, ok: false, error: String(e) }));
    }
  }
}
