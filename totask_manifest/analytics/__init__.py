"""Looking at manifests: stats, HTML reports, conversions."""
