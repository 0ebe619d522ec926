"""The answer reaches the library: tags, playlists, the report.

What classify-dir found goes back to the person whose music it is: genres written into the files'
tags, one playlist per genre that a player opens, and a self-contained HTML report of what the
collection holds and where the model was unsure. Each reads a finished results table
(``batchgenre.store.results.read_results``) and never changes the audio it names, except tagging.
"""
