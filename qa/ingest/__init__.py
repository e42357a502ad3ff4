"""Reading documents: loaders for each file type, and sentence-aware chunking with exact offsets."""
