"""Pure planning: Desired + Observed + Recorded + Digests -> Plan. No I/O, no clock."""
