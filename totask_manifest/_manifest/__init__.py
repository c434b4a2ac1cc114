"""The ground floor: streaming lossless manifest I/O, naming rules, schemas and validation."""
