"""The course's tools outside the notebooks: the command line, the distributed launcher, the web page."""
