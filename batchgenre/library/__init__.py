"""The answer reaches the library: genres into the files' tags, playlists, the report.

What classify-dir found goes back to the person whose music it is. Each piece reads a finished
results table (``batchgenre.store.results.read_results``). ``tagging`` writes the genres into the
files' own tags (ID3 TCON, Vorbis GENRE, MP4 ``©gen``) safely: it pretends unless told to write,
journals every old value first (``journal``, which also undoes), and writes each file as a copy
that replaces the original in one step (``rewrite``); ``formats`` says where each container keeps a
field. ``playlists`` writes one M3U8 per genre, and ``report`` a self-contained HTML page of what the
collection holds and where the model was unsure; neither touches the audio.
"""
