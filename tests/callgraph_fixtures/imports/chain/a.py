from b import thing as stuff

thing = stuff
