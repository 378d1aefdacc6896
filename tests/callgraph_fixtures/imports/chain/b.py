from c import thing
