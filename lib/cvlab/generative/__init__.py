"""Networks that make images (book ch. 14-17): DeepDream, neural style transfer, DCGAN and
super resolution. Import the submodules directly; each loads TensorFlow only when imported."""
