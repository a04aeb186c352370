"""EHF Billing 3.0 (Peppol BIS Billing 3.0) documents.

Will own: parsing and building invoices and credit notes, validation (UBL schema, EN 16931,
Peppol and Norwegian rules) and validation reports that agree with the official rule sets.
"""
