"""What was tried on the way to the shipped model: ablation configs (`configs/`) and analysis
scripts (`gap`, `lexicon`, `phonetic_choice`, `adapt_gain`). The recipe does not import them;
README.md here says what each tried and gave."""
