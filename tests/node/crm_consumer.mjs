// The README's Node consumer: a CRM reading Switchboard's events with the official NATS
// client, through its durable pull consumer, as the NATS user `crm`.
//
//   SB_NATS_URL=… SB_NATS_PASSWORD=… node crm_consumer.mjs TYPES COUNT
//
// TYPES is a JSON file listing the CloudEvents types the CRM was built for (the `type`
// constants of the schema's SwitchboardEvent); COUNT how many events to record before
// exiting. Prints one JSON line per recorded event.
// The part between the markers is the README's example, word for word (a test checks it).
import { readFileSync } from "node:fs";

import { AckPolicy, DeliverPolicy, connect } from "nats";

const url = process.env.SB_NATS_URL;
const secret = process.env.SB_NATS_PASSWORD;
const KNOWN_TYPES = new Set(JSON.parse(readFileSync(process.argv[2], "utf8")));
const wanted = Number(process.argv[3]);
let recorded = 0;

function record(callId, type, data) {
  console.log(JSON.stringify({ callId, type, data }));
  recorded += 1;
  // Enough: draining ends the loop below once what was taken is acknowledged.
  if (recorded === wanted) nc.drain();
}

// README example begins
const nc = await connect({ servers: url, user: "crm", pass: secret, inboxPrefix: "_INBOX.crm" });
const jsm = await nc.jetstreamManager();
await jsm.consumers.add("SB_EVENTS", {
  durable_name: "crm",
  ack_policy: AckPolicy.Explicit,
  deliver_policy: DeliverPolicy.New,
  filter_subject: "sb.evt.>",
});
const consumer = await nc.jetstream().consumers.get("SB_EVENTS", "crm");
const seen = new Set(); // at least once: dedupe on the CloudEvents identity
for await (const msg of await consumer.consume()) {
  const event = msg.json(); // structured mode: the body is the whole CloudEvent
  if (KNOWN_TYPES.has(event.type)) { // versioning: skip a type (or version) you do not know
    const identity = `${event.source} ${event.id}`;
    if (!seen.has(identity)) {
      record(event.subject, event.type, event.data); // subject = call id
      seen.add(identity);
    }
  }
  msg.ack(); // only after recording (or skipping)
}
// README example ends
await nc.closed();
