"""The course's tools outside the notebooks: the command line and the distributed launcher."""
