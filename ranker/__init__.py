"""Two-tower ranker: sentence-transformer towers, a FAISS index, and the evidence behind each score."""
