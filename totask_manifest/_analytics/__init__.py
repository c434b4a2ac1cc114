"""Looking at manifests: stats, HTML reports, conversions."""

#: formats ``convert`` reads and writes (here, so the CLI can list them without loading the converters)
MANIFEST = "manifest"
FORMATS = (MANIFEST, "parquet", "coco", "yolo", "dm-schema-v1", "synapse-objects")
