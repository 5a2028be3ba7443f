"""Where the data comes from: downloads, Flickr8k's archives, Karpathy's split files, the shapes generator,
caption files as people have them, and image files checked before use."""
