"""Machinery the lessons do not teach: errors, atomic files, the feature cache, precision, platform shims."""
