"""THE message model: parse once from bytes, every view the stages need, one contact finder.

Modules: ``contacts`` (the one finder of registered addresses in every written form),
``html`` (HTML as a browser reads it, lexbor), ``attachments`` (text and metadata of
attachments, barcodes), ``headers`` (address headers parsed before display names are decoded),
``views`` (every place a reader can see text in a message, for the egress check).
"""
