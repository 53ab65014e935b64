"""What the emulated APIs share: auth, clock, database, faults, paging, responses, uploads."""
