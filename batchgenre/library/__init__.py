"""The user's music library: tags in and out, playlists, the report.

``tagging`` writes a results table's genres into the files' own tags (ID3 TCON, Vorbis GENRE, MP4
``©gen``) safely: it pretends unless told to write, journals every old value before a change, writes
each file as a copy that replaces the original in one step, and ``undo`` puts the old values back.
``formats`` says where each container keeps a field; ``journal`` holds the old values and the undo.
"""
