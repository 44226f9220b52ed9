// The Node binding (integrations/node: wasm-bindgen over maskflow-transform) must pass every
// golden vector. Run: scripts/build-wasm --js && node --test integrations/node/test/
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");

const root = path.join(__dirname, "..", "..", "..");
const { Masker } = require(path.join(__dirname, "..", "pkg", "maskflow_node.js"));

const keyLine = fs.readFileSync(path.join(root, "tests", "vectors", "test.key"), "utf8")
  .split("\n").find((l) => l && !l.startsWith("#"));
const [id, key] = keyLine.split(/:(.*)/s);
const config = JSON.stringify({ keys: [{ id, key }] });

const vectors = fs.readFileSync(path.join(root, "tests", "vectors", "golden.jsonl"), "utf8")
  .split("\n").filter(Boolean).map((l) => JSON.parse(l));

function body(v) {
  let b = v.body_base64 !== undefined ? Buffer.from(v.body_base64, "base64") : Buffer.from(v.body, "utf8");
  if (v.pad_body_to) b = Buffer.concat([b, Buffer.alloc(v.pad_body_to - b.length, " ")]);
  return b;
}

test("every golden vector gives the expected row or rejection", () => {
  const masker = new Masker(config);
  assert.ok(vectors.length >= 70);
  for (const v of vectors) {
    const b = body(v);
    const actual = masker.transform(b, v.message_id, v.sent_timestamp_ms);
    const expected = structuredClone(v.expected);
    if (expected.rejection && expected.rejection.encrypted_body === null) {
      // Huge bodies are not stored in the file: check the ciphertext decrypts to the body.
      assert.equal(masker.unmask(actual.rejection.encrypted_body), b.toString("utf8"), v.name);
      actual.rejection.encrypted_body = null;
    }
    assert.deepEqual(actual, expected, v.name);
  }
});

test("unmask reverses a mask and refuses a tampered one", () => {
  const masker = new Masker(config);
  const sample = vectors.find((v) => v.name === "sample_event");
  assert.equal(masker.unmask(sample.expected.row.masked_ip), "199.172.111.135");
  assert.equal(masker.unmask(sample.expected.row.masked_device_id), "593-47-5928");
  const mask = sample.expected.row.masked_ip;
  const tampered = mask.slice(0, -2) + (mask.at(-2) === "A" ? "B" : "A") + mask.at(-1);
  assert.throws(() => masker.unmask(tampered), /wrong key or tampered/);
});

test("a bad config is a clear error, not a crash", () => {
  assert.throws(() => new Masker("{}"), /invalid config/);
  assert.throws(() => new Masker(JSON.stringify({ keys: [{ id: "k1", key: "c2hvcnQ=" }] })), /64 bytes/);
});
