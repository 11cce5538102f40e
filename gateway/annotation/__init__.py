"""Annotation: projects, the pull queue, label schemas, agreement and export."""
