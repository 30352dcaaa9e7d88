"""Step 1, `mixer prepare`: raw text -> the paper's rules -> held-out split -> tokenized Arrow corpus."""
