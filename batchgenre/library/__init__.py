"""Where the answer reaches the library: tags in (labels, artists) and out (genres), playlists, the report.

A library is laid out ``artist/album/NN title.ext``, not by genre; what it knows of genres and
artists is in its files' tags, in its owner's own spellings. ``labels`` reads them for featurize.
"""
