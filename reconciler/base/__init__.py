"""The floor every room stands on: records, errors, units, escaping of untrusted text, secrets."""
