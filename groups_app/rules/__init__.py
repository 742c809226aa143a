"""The rule book: who may make which change, decided in one place on canonical identities."""
