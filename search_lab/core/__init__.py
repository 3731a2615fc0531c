"""The ground floor every stage stands on: errors, parameter checks, registries, logging, and safe files."""
