// Package style answers "do these go well together?" for clothing and
// accessory product photos.
//
// It extracts VGG16 convolutional features from product photos, maps them
// with a siamese head into a 128-dimensional style space where the Euclidean
// distance between two items is their style score, trains that head on
// labelled pairs with a contrastive loss, evaluates it with ROC curves, and
// projects the style space to two dimensions with Barnes-Hut t-SNE.
package style
