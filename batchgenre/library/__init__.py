"""Where the answer reaches the library: tags in (labels, artists) and out (genres), playlists, the report.

A library is laid out ``artist/album/NN title.ext``, not by genre; what it knows of genres and
artists is in its files' tags, in its owner's own spellings. ``labels`` reads them for featurize.
What classify-dir found goes back to the person whose music it is; each of these pieces reads a
finished results table (``batchgenre.store.results.read_results``). ``tagging`` writes the genres
into the files' own tags (ID3 TCON, Vorbis GENRE, MP4 ``©gen``) safely: it pretends unless told to
write, journals every old value first (``journal``, which also undoes), and writes each file as a
copy that replaces the original in one step (``rewrite``); ``formats`` says where each container
keeps a field. ``playlists`` writes one M3U8 per genre, and ``report`` a self-contained HTML page of
what the collection holds and where the model was unsure; neither touches the audio.
"""
