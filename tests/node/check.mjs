// Switchboard's exported contracts as an integrator's Node tools read them.
//
//   node check.mjs SCHEMA ASYNCAPI [EVENTS]
//
// SCHEMA (messages.schema.json) must compile in Ajv's strict mode with its one keyword of
// ours, x-personal-data, declared; every event in EVENTS (JSON lines of
// {"headers": {...}, "body": "<the message body>"}) must be a CloudEvent to the CloudEvents
// SDK, carry the structured-mode Content-Type, and validate against SCHEMA; ASYNCAPI must
// parse with no diagnostic of warning level or above. Prints one JSON summary line; exits
// 1 with the problems on stderr.
import { readFileSync } from "node:fs";

import { Parser } from "@asyncapi/parser";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { CloudEvent } from "cloudevents";

const [schemaPath, asyncapiPath, eventsPath] = process.argv.slice(2);
const problems = [];
const EVENT_CONTENT_TYPE = "application/cloudevents+json";
// Severity 0 is an error, 1 a warning (2 information, 3 a hint).
const WARNING = 1;

function strictAjv() {
  const ajv = new Ajv2020({
    strict: true,
    allErrors: true,
    unicodeRegExp: true,
    keywords: ["x-personal-data"],
  });
  addFormats(ajv);
  return ajv;
}

function* patterns(node) {
  if (Array.isArray(node)) {
    for (const value of node) yield* patterns(value);
  } else if (node && typeof node === "object") {
    if (typeof node.pattern === "string") yield node.pattern;
    for (const value of Object.values(node)) yield* patterns(value);
  }
}

// Every pattern compiles as ECMAScript with the u flag (stricter than Ajv's default).
function checkPatterns(doc, name) {
  let count = 0;
  for (const pattern of patterns(doc)) {
    count += 1;
    try {
      new RegExp(pattern, "u");
    } catch (err) {
      problems.push(`${name}: pattern ${pattern} does not compile with the u flag: ${err.message}`);
    }
  }
  return count;
}

function checkSchema() {
  const doc = JSON.parse(readFileSync(schemaPath, "utf8"));
  checkPatterns(doc, "schema");
  checkPatterns(JSON.parse(readFileSync(asyncapiPath, "utf8")), "asyncapi");
  const ajv = strictAjv();
  const validate = ajv.compile(doc);
  // Every definition compiles on its own too (strict mode checks each subschema it sees).
  ajv.addSchema(doc, "switchboard");
  for (const name of Object.keys(doc.$defs)) {
    ajv.getSchema(`switchboard#/$defs/${name}`);
  }
  return { validate, definitions: Object.keys(doc.$defs).length };
}

function checkEvents(validate) {
  if (!eventsPath) return 0;
  const lines = readFileSync(eventsPath, "utf8").split("\n").filter((l) => l.trim());
  for (const line of lines) {
    const { headers, body } = JSON.parse(line);
    const event = JSON.parse(body);
    const where = `${event.type} ${event.id}`;
    if (headers["Content-Type"] !== EVENT_CONTENT_TYPE) {
      problems.push(`${where}: Content-Type is ${headers["Content-Type"]}`);
    }
    try {
      new CloudEvent(event, true).validate();
    } catch (err) {
      problems.push(`${where}: not a CloudEvent: ${JSON.stringify(err.errors ?? err.message)}`);
    }
    if (!validate(event)) {
      problems.push(`${where}: ${JSON.stringify(validate.errors.slice(0, 5))}`);
    }
  }
  return lines.length;
}

async function checkAsyncApi() {
  const parser = new Parser();
  const { document, diagnostics } = await parser.parse(readFileSync(asyncapiPath, "utf8"));
  for (const d of diagnostics.filter((d) => d.severity <= WARNING)) {
    problems.push(`asyncapi ${d.code} at ${d.path.join(".")}: ${d.message}`);
  }
  if (document === undefined) problems.push("asyncapi: the document did not parse");
  return diagnostics.length;
}

const { validate, definitions } = checkSchema();
const events = checkEvents(validate);
const diagnostics = await checkAsyncApi();
const summary = { definitions, events, asyncapiDiagnostics: diagnostics, problems: problems.length };
console.log(JSON.stringify(summary));
if (problems.length) {
  console.error(problems.join("\n"));
  process.exit(1);
}
