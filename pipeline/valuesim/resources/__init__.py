"""Data files shipped with the package (guidance wordings, descriptor-generation prompts), read
through importlib.resources so an installed copy finds them without the source tree."""
