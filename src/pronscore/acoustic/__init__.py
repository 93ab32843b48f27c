"""Acoustic models upstream of the aligners: the embedded pocketsphinx GMM-HMM."""
