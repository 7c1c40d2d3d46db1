package engine

// Texts of the invitation and the follow-up reply, per language. The
// question is the reference practice's own: how likely the customer is to
// recommend the organisation to family and friends.
type texts struct {
	Subject, Question, Low, High, Intro, Unsubscribe, Footer string
	ReplySubject, ReplyIntro                                 string
}

var allTexts = map[string]texts{
	"en": {
		Subject:      "How was your visit to %s?",
		Intro:        "Thank you for visiting us. One question, one click:",
		Question:     "How likely are you to recommend %s to your family and friends?",
		Low:          "0 = not at all likely",
		High:         "10 = extremely likely",
		Unsubscribe:  "Never ask me again",
		Footer:       "We ask at most once every six months. Answering is voluntary.",
		ReplySubject: "What we did after your answer to %s",
		ReplyIntro:   "Thank you for telling us how we did. This is what we have done:",
	},
	"bg": {
		Subject:      "Как мина посещението ви в %s?",
		Intro:        "Благодарим ви за посещението. Един въпрос, едно щракване:",
		Question:     "Колко вероятно е да препоръчате %s на свои близки и приятели?",
		Low:          "0 = никак не е вероятно",
		High:         "10 = изключително вероятно",
		Unsubscribe:  "Не ме питайте повече",
		Footer:       "Питаме не по-често от веднъж на шест месеца. Отговорът е доброволен.",
		ReplySubject: "Какво направихме след вашия отговор за %s",
		ReplyIntro:   "Благодарим ви, че ни казахте как се справихме. Ето какво направихме:",
	},
	"ru": {
		Subject:      "Как прошёл ваш визит в %s?",
		Intro:        "Спасибо за визит. Один вопрос, один щелчок:",
		Question:     "Насколько вероятно, что вы порекомендуете %s своим близким и друзьям?",
		Low:          "0 = совсем маловероятно",
		High:         "10 = очень вероятно",
		Unsubscribe:  "Больше не спрашивать",
		Footer:       "Мы спрашиваем не чаще раза в шесть месяцев. Ответ добровольный.",
		ReplySubject: "Что мы сделали после вашего ответа о %s",
		ReplyIntro:   "Спасибо, что рассказали, как мы справились. Вот что мы сделали:",
	},
}

func textsFor(lang string) texts {
	if t, ok := allTexts[lang]; ok {
		return t
	}
	return allTexts["en"]
}
