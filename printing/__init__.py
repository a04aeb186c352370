"""The paper path.

Will own: letter rendering to PDF with an address block, print jobs and batches, the
print-provider protocol and its local stand-in, and return-mail handling.
"""
