"""finetunes.yaml -> Desired: YAML with line marks, ${ENV} interpolation, the JSON Schema."""
